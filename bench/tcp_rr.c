/*
 * TCP request/response latency: the client sends one byte, the server sends
 * it back, N times over one connection (TCP_NODELAY). The client prints the
 * median and the mean round trip in microseconds.
 *   tcp_rr server PORT            (serves one connection, then exits)
 *   tcp_rr client ADDR PORT N
 * And the cost of a connection (netperf's TCP_CRR): N times connect, one
 * byte each way, close. The client closes with a reset (SO_LINGER 0), so
 * neither side keeps TIME_WAIT sockets whose ports a later connection would
 * collide with. The client prints the median and the mean.
 *   tcp_rr crr-server PORT        (serves until killed)
 *   tcp_rr crr ADDR PORT N
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

static int listener(const char *port, int backlog)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(port)), .sin_addr.s_addr = INADDR_ANY };
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, backlog)) {
		perror("bind/listen");
		exit(1);
	}
	return s;
}

static double elapsed_us(const struct timespec *t0, const struct timespec *t1)
{
	return (t1->tv_sec - t0->tv_sec) * 1e6 + (t1->tv_nsec - t0->tv_nsec) / 1e3;
}

static void report(double *xs, int n)
{
	double sum = 0;

	for (int i = 0; i < n; i++)
		sum += xs[i];
	qsort(xs, n, sizeof(double), cmp);
	printf("%.2f %.2f\n", xs[n / 2], sum / n);
}

int main(int argc, char **argv)
{
	char b = 'x';
	if (argc == 3 && !strcmp(argv[1], "crr-server")) {
		int s = listener(argv[2], 128), c;

		while ((c = accept(s, NULL, NULL)) >= 0) {
			nodelay(c);
			if (read(c, &b, 1) == 1 && write(c, &b, 1) == 1)
				while (read(c, &b, 1) > 0)
					; /* until the client's reset */
			close(c);
		}
		return perror("accept"), 1;
	}
	if (argc == 5 && !strcmp(argv[1], "crr")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		struct linger reset = { .l_onoff = 1, .l_linger = 0 };
		int n = atoi(argv[4]);
		double *t = calloc(n, sizeof(double));

		inet_pton(AF_INET, argv[2], &a.sin_addr);
		for (int i = 0, tries = 0; i < n;) {
			struct timespec t0, t1;
			int s = socket(AF_INET, SOCK_STREAM, 0);

			clock_gettime(CLOCK_MONOTONIC, &t0);
			if (connect(s, (struct sockaddr *)&a, sizeof(a))) {
				/* the server may not listen yet: the first connection waits for it */
				close(s);
				if (i > 0 || ++tries > 50)
					return perror("connect"), 1;
				usleep(100000);
				continue;
			}
			nodelay(s);
			if (write(s, &b, 1) != 1 || read(s, &b, 1) != 1)
				return perror("crr"), 1;
			setsockopt(s, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
			close(s);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			t[i++] = elapsed_us(&t0, &t1);
		}
		report(t, n);
		return 0;
	}
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
