/*
 * Sends one ICMP (IPv4) or ICMPv6 error message to DST from this network
 * namespace, quoting a packet of our choosing: a forged "unreachable" for a
 * connection that may not exist, as an attacker on the path would send.
 *   icmp-error DST TYPE CODE tcp|udp QSRC QSPORT QDST QDPORT
 * The family follows DST's form; the kernel sums ICMPv6 itself.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint16_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* ICMPv6: 8 bytes of header (MTU for "packet too big"), the quoted IPv6 header, 8 bytes of L4. */
static int send6(char **argv)
{
	uint8_t msg[8 + 40 + 8] = { 0 };
	struct sockaddr_in6 to = { .sin6_family = AF_INET6 };
	uint16_t sport = htons((uint16_t)atoi(argv[6])), dport = htons((uint16_t)atoi(argv[8])), plen = htons(1460);
	int fd;

	if (inet_pton(AF_INET6, argv[1], &to.sin6_addr) != 1 || inet_pton(AF_INET6, argv[5], msg + 16) != 1 ||
	    inet_pton(AF_INET6, argv[7], msg + 32) != 1) {
		fprintf(stderr, "icmp-error: bad IPv6 address\n");
		return 2;
	}
	msg[0] = (uint8_t)atoi(argv[2]);
	msg[1] = (uint8_t)atoi(argv[3]);
	if (msg[0] == 2) { /* packet too big: the MTU */
		msg[6] = 1280 >> 8;
		msg[7] = 1280 & 0xff;
	}
	msg[8] = 0x60;
	memcpy(msg + 12, &plen, 2);
	msg[14] = strcmp(argv[4], "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
	msg[15] = 64;
	memcpy(msg + 48, &sport, 2);
	memcpy(msg + 50, &dport, 2);
	fd = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
	if (fd < 0 || sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
		perror("icmp-error: send");
		return 1;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t msg[8 + 20 + 8] = { 0 };
	struct iphdr *q = (struct iphdr *)(msg + 8);
	struct sockaddr_in to = { .sin_family = AF_INET };
	uint16_t sport, dport;
	int fd;

	if (argc != 9) {
		fprintf(stderr, "usage: %s DST TYPE CODE tcp|udp QSRC QSPORT QDST QDPORT\n", argv[0]);
		return 2;
	}
	if (strchr(argv[1], ':'))
		return send6(argv);
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1 || inet_pton(AF_INET, argv[5], &q->saddr) != 1 ||
	    inet_pton(AF_INET, argv[7], &q->daddr) != 1) {
		fprintf(stderr, "icmp-error: bad IPv4 address\n");
		return 2;
	}
	msg[0] = (uint8_t)atoi(argv[2]);
	msg[1] = (uint8_t)atoi(argv[3]);
	if (msg[0] == 3 && msg[1] == 4) { /* fragmentation needed: next-hop MTU */
		msg[6] = 1280 >> 8;
		msg[7] = 1280 & 0xff;
	}
	q->version = 4;
	q->ihl = 5;
	q->ttl = 64;
	q->tot_len = htons(1500);
	q->protocol = strcmp(argv[4], "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
	q->check = checksum(q, 20);
	sport = htons((uint16_t)atoi(argv[6]));
	dport = htons((uint16_t)atoi(argv[8]));
	memcpy(msg + 28, &sport, 2);
	memcpy(msg + 30, &dport, 2);
	((uint16_t *)msg)[1] = checksum(msg, sizeof(msg));

	fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (fd < 0) {
		perror("icmp-error: socket");
		return 1;
	}
	if (sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
		perror("icmp-error: sendto");
		return 1;
	}
	close(fd);
	return 0;
}
