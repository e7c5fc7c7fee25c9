/*
 * TCP request/response latency: the client sends one byte, the server sends
 * it back, N times over one connection (TCP_NODELAY). The client prints the
 * median and the mean round trip in microseconds.
 *   tcp_rr server PORT            (serves one connection, then exits)
 *   tcp_rr client ADDR PORT N
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int main(int argc, char **argv)
{
	char b = 'x';
	if (argc == 3 && !strcmp(argv[1], "server")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr.s_addr = INADDR_ANY };
		int one = 1, s = socket(AF_INET, SOCK_STREAM, 0), c;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1)) return perror("bind/listen"), 1;
		if ((c = accept(s, NULL, NULL)) < 0) return perror("accept"), 1;
		nodelay(c);
		while (read(c, &b, 1) == 1)
			if (write(c, &b, 1) != 1) break;
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "client")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		int n = atoi(argv[4]), s = socket(AF_INET, SOCK_STREAM, 0);
		double *rt = calloc(n, sizeof(double)), sum = 0;
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		for (int tries = 0; connect(s, (struct sockaddr *)&a, sizeof(a)); tries++) {
			if (tries > 50) return perror("connect"), 1;
			usleep(100000);
			close(s);
			s = socket(AF_INET, SOCK_STREAM, 0);
		}
		nodelay(s);
		for (int i = 0; i < n; i++) {
			struct timespec t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			if (write(s, &b, 1) != 1 || read(s, &b, 1) != 1) return perror("rr"), 1;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			rt[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
			sum += rt[i];
		}
		qsort(rt, n, sizeof(double), cmp);
		printf("%.2f %.2f\n", rt[n / 2], sum / n);
		return 0;
	}
	fprintf(stderr, "usage: tcp_rr server PORT | tcp_rr client ADDR PORT N\n");
	return 2;
}
