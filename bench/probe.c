/*
 * When does each of many addresses start answering? Sends ICMP echo requests
 * in rounds to every address that has not answered yet (one round every
 * ROUND_US) and prints, per address, the CLOCK_MONOTONIC time in ns of its
 * first reply, or -1 if none came before the deadline.
 *   probe DEADLINE_MS ADDR...
 * It prints "probing" once the first round is out, so the caller can start
 * the change it wants to time.
 */
#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ROUND_US 5000

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static unsigned short csum(const void *data, int len)
{
	const unsigned short *p = data;
	unsigned int sum = 0;
	for (; len > 1; len -= 2) sum += *p++;
	if (len) sum += *(const unsigned char *)p;
	sum = (sum >> 16) + (sum & 0xffff);
	return ~(sum + (sum >> 16));
}

/* Takes every reply waiting on the socket; returns how many addresses answered for the first time. */
static int drain(int fd, unsigned short ident, int n, long long *first)
{
	unsigned char buf[256];
	ssize_t got;
	int fresh = 0;

	while ((got = recv(fd, buf, sizeof(buf), 0)) > 0) {
		struct iphdr *ip = (struct iphdr *)buf;
		struct icmphdr *r = (struct icmphdr *)(buf + ip->ihl * 4);
		if (got < ip->ihl * 4 + (ssize_t)sizeof(*r) || r->type != ICMP_ECHOREPLY || r->un.echo.id != ident) continue;
		int i = ntohs(r->un.echo.sequence);
		if (i < n && !first[i]) {
			first[i] = now_ns();
			fresh++;
		}
	}
	return fresh;
}

int main(int argc, char **argv)
{
	if (argc < 3) return fprintf(stderr, "usage: probe DEADLINE_MS ADDR...\n"), 2;
	int n = argc - 2, left = n, fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMP);
	unsigned short ident = getpid() & 0xffff;
	long long deadline = now_ns() + atoll(argv[1]) * 1000000LL, *first = calloc(n, sizeof(long long));
	struct sockaddr_in *to = calloc(n, sizeof(*to));
	if (fd < 0) return perror("raw socket"), 1;
	for (int i = 0; i < n; i++) {
		to[i].sin_family = AF_INET;
		if (inet_pton(AF_INET, argv[i + 2], &to[i].sin_addr) != 1) return fprintf(stderr, "bad address %s\n", argv[i + 2]), 2;
	}
	for (int round = 0; left > 0 && now_ns() < deadline; round++) {
		long long next = now_ns() + ROUND_US * 1000LL;
		for (int i = 0; i < n; i++) {
			if (first[i]) continue;
			struct icmphdr h = { .type = ICMP_ECHO, .un.echo.id = ident, .un.echo.sequence = htons(i) };
			h.checksum = csum(&h, sizeof(h));
			sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&to[i], sizeof(to[i]));
			/* Replies come back while we send (the path runs inline): take them before the socket's buffer overflows. */
			if (i % 64 == 63) left -= drain(fd, ident, n, first);
		}
		if (round == 0) {
			printf("probing\n");
			fflush(stdout);
		}
		left -= drain(fd, ident, n, first);
		for (long long t; left > 0 && (t = now_ns()) < next;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (poll(&p, 1, (int)((next - t) / 1000000) + 1) > 0) left -= drain(fd, ident, n, first);
		}
	}
	for (int i = 0; i < n; i++) printf("%s %lld\n", argv[i + 2], first[i] ? first[i] : -1);
	return 0;
}
