/*
 * The smallest TCP/UDP peers the tests need (busybox's nc has no UDP and
 * stops reading stdin early), built static so it runs in the busybox image.
 *   nettool tcp-send HOST PORT BYTES   send BYTES, close, wait for the peer's close
 *   nettool tcp-recv PORT              accept one connection, print the bytes received
 *   nettool udp-send HOST PORT BYTES   send one datagram of BYTES
 *   nettool udp-recv PORT SECS         print the size of the first datagram (0: none in SECS)
 *   nettool udp-echo PORT              answer one datagram with itself; print its sender ADDR:PORT
 *   nettool udp-ask HOST PORT [BYTES]  send one datagram (4 bytes); print "reply" when it comes back
 *                                      whole, else "none" after 2 s
 *   nettool udp-refused HOST PORT      send one datagram on a connected socket; print "refused"
 *                                      (an ICMP port unreachable came back), "reply" or "none"
 *   nettool udp-whois HOST PORT        send one datagram (unconnected socket); print the reply's
 *                                      sender ADDR:PORT (recvfrom's), else "none" after 2 s
 *   nettool tcp-peer HOST PORT         connect; print the peer getpeername gives, ADDR:PORT, or
 *                                      the connect error
 *   nettool tick-server PORT USEC      accept one connection, send a byte every USEC
 *   nettool tick-client HOST PORT      read until 1 s passes without a byte; print
 *                                      "last NS bytes N": CLOCK_MONOTONIC of the last byte
 *   nettool echo HOST ID               one ICMP echo request with identifier ID (raw
 *                                      socket); print "reply" or "none" after 1 s
 * tcp-send, tcp-recv, udp-refused, udp-whois and tcp-peer speak IPv4 and IPv6; the others IPv4. Every call ends within 30 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char buf[65536];

static struct sockaddr_in addr(const char *host, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)) };

	if (host && inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "nettool: bad IPv4 address %s\n", host);
		exit(2);
	}
	return a;
}

/* An IPv4 or IPv6 peer, by the form of its address. */
static socklen_t peer(const char *host, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strchr(host, ':')) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((unsigned short)atoi(port));
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
			fprintf(stderr, "nettool: bad IPv6 address %s\n", host);
			exit(2);
		}
		return sizeof(*a6);
	}
	*(struct sockaddr_in *)ss = addr(host, port);
	return sizeof(struct sockaddr_in);
}

static int bound(int type, const char *port)
{
	struct sockaddr_in a = addr(NULL, port);
	int one = 1, fd = socket(AF_INET, type, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("nettool: bind");
		exit(1);
	}
	return fd;
}

static void print_peer(const struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		printf("[%s]:%u\n", inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text)), ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		printf("%s:%u\n", inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text)), ntohs(a->sin_port));
	}
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	alarm(30);
	if (strcmp(cmd, "tcp-send") == 0 && argc == 5) {
		struct sockaddr_storage ss;
		socklen_t len = peer(argv[2], argv[3], &ss);
		long left = atol(argv[4]);
		int fd = socket(ss.ss_family, SOCK_STREAM, 0);

		if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
			perror("nettool: connect");
			return 1;
		}
		memset(buf, 'x', sizeof(buf));
		while (left > 0) {
			ssize_t n = write(fd, buf, left < (long)sizeof(buf) ? (size_t)left : sizeof(buf));
			if (n <= 0) {
				perror("nettool: write");
				return 1;
			}
			left -= n;
		}
		shutdown(fd, SHUT_WR);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		return 0;
	}
	if (strcmp(cmd, "tcp-recv") == 0 && argc == 3) {
		/* Both families on one socket. */
		struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons((unsigned short)atoi(argv[2])) };
		int fd = socket(AF_INET6, SOCK_STREAM, 0), off = 0, one = 1, c;
		long total = 0;
		ssize_t n;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&any, sizeof(any)) < 0) {
			perror("nettool: bind");
			return 1;
		}
		listen(fd, 1);
		c = accept(fd, NULL, NULL);
		while ((n = read(c, buf, sizeof(buf))) > 0)
			total += n;
		printf("%ld\n", total);
		return 0;
	}
	if (strcmp(cmd, "udp-send") == 0 && argc == 5) {
		struct sockaddr_in a = addr(argv[2], argv[3]);
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		size_t len = (size_t)atol(argv[4]);

		if (len > sizeof(buf) || sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("nettool: sendto");
			return 1;
		}
		return 0;
	}
	if (strcmp(cmd, "udp-recv") == 0 && argc == 4) {
		int fd = bound(SOCK_DGRAM, argv[2]);
		struct timeval tv = { .tv_sec = atoi(argv[3]) };
		ssize_t n;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(fd, buf, sizeof(buf), 0);
		printf("%ld\n", n < 0 ? 0L : (long)n);
		return 0;
	}
	if (strcmp(cmd, "udp-echo") == 0 && argc == 3) {
		int fd = bound(SOCK_DGRAM, argv[2]);
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
		char text[INET_ADDRSTRLEN];

		if (n < 0 || sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len) < 0) {
			perror("nettool: udp-echo");
			return 1;
		}
		printf("%s:%u\n", inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text)), ntohs(from.sin_port));
		return 0;
	}
	if (strcmp(cmd, "udp-ask") == 0 && (argc == 4 || argc == 5)) {
		struct sockaddr_in a = addr(argv[2], argv[3]);
		struct timeval tv = { .tv_sec = 2 };
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		size_t len = argc == 5 ? (size_t)atol(argv[4]) : 4;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		memset(buf, 'p', sizeof(buf));
		if (len > sizeof(buf) || sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("nettool: sendto");
			return 1;
		}
		printf("%s\n", recv(fd, buf, sizeof(buf), 0) == (ssize_t)len ? "reply" : "none");
		return 0;
	}
	if (strcmp(cmd, "udp-refused") == 0 && argc == 4) {
		struct sockaddr_storage ss;
		socklen_t len = peer(argv[2], argv[3], &ss);
		struct timeval tv = { .tv_sec = 2 };
		int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
		ssize_t n;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&ss, len) < 0 || send(fd, "ping", 4, 0) < 0) {
			perror("nettool: udp-refused");
			return 1;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		printf("%s\n", n >= 0 ? "reply" : errno == ECONNREFUSED ? "refused" : "none");
		return 0;
	}
	if (strcmp(cmd, "udp-whois") == 0 && argc == 4) {
		struct sockaddr_storage ss, from;
		socklen_t len = peer(argv[2], argv[3], &ss), fromlen = sizeof(from);
		struct timeval tv = { .tv_sec = 2 };
		int fd = socket(ss.ss_family, SOCK_DGRAM, 0);

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (sendto(fd, "ping", 4, 0, (struct sockaddr *)&ss, len) < 0) {
			perror("nettool: sendto");
			return 1;
		}
		if (recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen) < 0)
			printf("none\n");
		else
			print_peer(&from);
		return 0;
	}
	if (strcmp(cmd, "tcp-peer") == 0 && argc == 4) {
		struct sockaddr_storage ss, got;
		socklen_t len = peer(argv[2], argv[3], &ss), gotlen = sizeof(got);
		int fd = socket(ss.ss_family, SOCK_STREAM, 0);

		if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
			printf("%s\n", strerror(errno));
			return 0;
		}
		if (getpeername(fd, (struct sockaddr *)&got, &gotlen) < 0) {
			perror("nettool: getpeername");
			return 1;
		}
		print_peer(&got);
		return 0;
	}
	if (strcmp(cmd, "tick-server") == 0 && argc == 4) {
		int fd = bound(SOCK_STREAM, argv[2]), c;
		useconds_t every = (useconds_t)atoi(argv[3]);

		listen(fd, 1);
		c = accept(fd, NULL, NULL);
		while (write(c, "t", 1) == 1)
			usleep(every);
		return 0;
	}
	if (strcmp(cmd, "tick-client") == 0 && argc == 4) {
		struct sockaddr_in a = addr(argv[2], argv[3]);
		struct timeval tv = { .tv_sec = 1 };
		struct timespec last = { 0 };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		long total = 0;
		ssize_t n;

		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("nettool: connect");
			return 1;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			clock_gettime(CLOCK_MONOTONIC, &last);
			total += n;
		}
		printf("last %lld bytes %ld\n", (long long)last.tv_sec * 1000000000LL + last.tv_nsec, total);
		return 0;
	}
	if (strcmp(cmd, "echo") == 0 && argc == 4) {
		struct sockaddr_in a = addr(argv[2], "0");
		uint16_t id = htons((uint16_t)atoi(argv[3]));
		unsigned char req[16] = { 8, 0 };
		int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint32_t sum = 0;

		if (fd < 0) {
			perror("nettool: raw socket");
			return 1;
		}
		memcpy(req + 4, &id, 2);
		req[7] = 1;
		for (size_t i = 0; i < sizeof(req); i += 2)
			sum += (uint32_t)req[i] << 8 | req[i + 1];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		req[2] = (unsigned char)(~sum >> 8);
		req[3] = (unsigned char)~sum;
		if (sendto(fd, req, sizeof(req), 0, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("nettool: sendto");
			return 1;
		}
		while (poll(&p, 1, 1000) > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			struct iphdr *ip = (struct iphdr *)buf;
			unsigned char *icmp = (unsigned char *)buf + ip->ihl * 4;

			if (n >= (ssize_t)(ip->ihl * 4 + 8) && icmp[0] == 0 && memcmp(icmp + 4, &id, 2) == 0) {
				printf("reply\n");
				return 0;
			}
		}
		printf("none\n");
		return 0;
	}
	fprintf(stderr, "usage: nettool tcp-send HOST PORT BYTES | tcp-recv PORT | udp-send HOST PORT BYTES | udp-recv PORT SECS | udp-echo PORT | udp-ask HOST PORT [BYTES] | udp-refused HOST PORT | tick-server PORT USEC | tick-client HOST PORT | echo HOST ID\n");
	return 2;
}
