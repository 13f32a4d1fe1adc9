/*
 * server: `pageserver` options, the listening socket and the children.
 *
 * The parent only accepts: each connection is served by a forked child
 * (ps_serve_conn), so a fault stays with its peer and memory is per connection. Above
 * --max-clients live children a new connection gets ERROR "busy" and is closed.
 * Signals (SIGTERM, SIGINT, SIGCHLD) arrive on a signalfd polled with the listener:
 * SIGTERM/SIGINT stop accepting, send SIGTERM to every child (which removes its
 * partial round and exits), wait for them (bounded, then SIGKILL) and exit 0.
 *
 * Readiness: once listening, the server logs "listening on ADDR:PORT" and, with
 * --pidfile FILE, writes its pid there (renamed into place: the file appears whole).
 * Without --auth-key it refuses any address that is not loopback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "pageserver/pageserver.h"

#define STOP_WAIT_MS 10000

struct srv_opts {
	int port;
	const char *address;
	const char *dir;
	const char *key_file;
	const char *pidfile;
	const char *log_file;
	bool once;
	int timeout_s;
	int max_clients;
	int verbosity;
};

struct srv {
	struct srv_opts o;
	struct ps_key key;
	int dirfd, lfd, sfd;
	pid_t *kids; /* max_clients slots, 0 = free */
	int n_kids;
	bool stop;
	int once_status; /* --once: the child's result */
	bool once_done;
	bool pidfile_written;
};

static void srv_usage(FILE *f)
{
	fprintf(f, "Usage: pageserver --port N [options]   (also: ferry pageserver ...)\n"
		   "  --port N           TCP port to listen on (required)\n"
		   "  --address A        address to listen on (default 127.0.0.1); any other\n"
		   "                     than loopback needs --auth-key\n"
		   "  -D, --images-dir DIR  where rounds go: DIR/<source>/<round>/ (default .)\n"
		   "  --auth-key FILE    pre-shared key (>= 32 bytes): mutual authentication\n"
		   "  --once             exit after one connection\n"
		   "  --timeout SEC      idle timeout per wait on a peer (default 60)\n"
		   "  --max-clients N    concurrent connections (default 16); more get \"busy\"\n"
		   "  --pidfile FILE     write the pid there once listening\n"
		   "  -v[v...], -v N     verbosity (0 errors .. 4 trace; default 2)\n"
		   "  -o, --log-file FILE  log to FILE instead of stderr\n"
		   "  -h, --help         this help\n");
}

enum { O_PORT = 256, O_ADDRESS, O_KEY, O_ONCE, O_TIMEOUT, O_MAX, O_PIDFILE };

static const struct option srv_long[] = {
	{ "port", required_argument, NULL, O_PORT },
	{ "address", required_argument, NULL, O_ADDRESS },
	{ "images-dir", required_argument, NULL, 'D' },
	{ "auth-key", required_argument, NULL, O_KEY },
	{ "once", no_argument, NULL, O_ONCE },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "max-clients", required_argument, NULL, O_MAX },
	{ "pidfile", required_argument, NULL, O_PIDFILE },
	{ "log-file", required_argument, NULL, 'o' },
	{ "verbosity", optional_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int int_opt(const char *name, const char *arg, int lo, int hi, int *out)
{
	if (parse_int(arg, out) < 0 || *out < lo || *out > hi) {
		fprintf(stderr, "pageserver: error: %s needs a number in %d..%d, got '%s'\n", name,
			lo, hi, arg);
		return 2;
	}
	return 0;
}

/* 0, 1 (--help printed) or 2 (usage error printed). */
static int srv_parse(int argc, char **argv, struct srv_opts *o)
{
	int c, r = 0;
	optind = 1;
	opterr = 0;
	while (!r && (c = getopt_long(argc, argv, ":D:o:v::h", srv_long, NULL)) != -1) {
		switch (c) {
		case O_PORT:
			r = int_opt("--port", optarg, 1, 65535, &o->port);
			break;
		case O_ADDRESS:
			o->address = optarg;
			break;
		case 'D':
			o->dir = optarg;
			break;
		case O_KEY:
			o->key_file = optarg;
			break;
		case O_ONCE:
			o->once = true;
			break;
		case O_TIMEOUT:
			r = int_opt("--timeout", optarg, 1, 86400, &o->timeout_s);
			break;
		case O_MAX:
			r = int_opt("--max-clients", optarg, 1, 4096, &o->max_clients);
			break;
		case O_PIDFILE:
			o->pidfile = optarg;
			break;
		case 'o':
			o->log_file = optarg;
			break;
		case 'v':
			if (log_verbosity_arg(optarg, &o->verbosity) < 0)
				r = int_opt("-v", optarg, 0, 4, &o->verbosity);
			break;
		case 'h':
			srv_usage(stdout);
			return 1;
		case ':':
			fprintf(stderr, "pageserver: error: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "pageserver: error: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (!r && optind < argc) {
		fprintf(stderr, "pageserver: error: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!r && !o->port) {
		fprintf(stderr, "pageserver: error: --port N is required\n");
		return 2;
	}
	return r;
}

/* Resolve --address (numeric IPv4 or IPv6). */
static int srv_addr(const char *a, struct sockaddr_storage *ss, socklen_t *len, int port,
		    bool *loopback)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, a, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		*loopback = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		return 0;
	}
	return pr_err_ret(-EINVAL, "--address '%s' is not a numeric IPv4 or IPv6 address", a);
}

static int srv_listen(struct srv *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	bool loopback;
	int one = 1, r;

	if ((r = srv_addr(s->o.address, &ss, &len, s->o.port, &loopback)) < 0)
		return r;
	if (!loopback && !s->key.set)
		return pr_err_ret(-EPERM,
				  "refusing to listen on non-loopback address '%s' without "
				  "--auth-key FILE (anyone could send images)",
				  s->o.address);
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return pr_perror("cannot create a socket");
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, (struct sockaddr *)&ss, len) < 0)
		return pr_perror("cannot bind %s port %d", s->o.address, s->o.port);
	if (listen(s->lfd, 128) < 0)
		return pr_perror("cannot listen on %s port %d", s->o.address, s->o.port);
	return 0;
}

static int write_pidfile(const char *path)
{
	char tmp[4096], buf[32];
	int fd, n = snprintf(buf, sizeof(buf), "%d\n", getpid()), r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return pr_err_ret(-ENAMETOOLONG, "--pidfile '%s'", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return pr_perror("cannot create pidfile '%s'", tmp);
	if ((r = write_full(fd, buf, n)) < 0)
		pr_err_ret(r, "cannot write pidfile '%s'", tmp);
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = pr_perror("cannot rename pidfile to '%s'", path);
	return r;
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		port = ntohs(in->sin_port);
		snprintf(out, n, "%s:%d", a, port);
	} else {
		const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in->sin6_addr, a, sizeof(a));
		port = ntohs(in->sin6_port);
		snprintf(out, n, "[%s]:%d", a, port);
	}
}

/* In the forked child: serve FD and exit. */
static void child_run(struct srv *s, int fd, const char *peer)
{
	static char prefix[128];
	struct ps_serve sv = { .dirfd = s->dirfd,
			       .key = &s->key,
			       .timeout_ms = s->o.timeout_s * 1000 };
	sigset_t all;

	close(s->lfd);
	close(s->sfd);
	snprintf(prefix, sizeof(prefix), "pageserver[%s]", peer);
	log_set_prefix(prefix);
	ps_serve_sigterm(fd);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	_exit(ps_serve_conn(&sv, fd) < 0 ? 1 : 0);
}

static void kid_add(struct srv *s, pid_t pid)
{
	for (int i = 0; i < s->o.max_clients; i++) {
		if (!s->kids[i]) {
			s->kids[i] = pid;
			s->n_kids++;
			return;
		}
	}
}

/* Reap every exited child. */
static void kids_reap(struct srv *s)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (int i = 0; i < s->o.max_clients; i++) {
			if (s->kids[i] == pid) {
				s->kids[i] = 0;
				s->n_kids--;
			}
		}
		if (WIFSIGNALED(st))
			pr_err("connection child %d killed by signal %d", pid, WTERMSIG(st));
		if (s->o.once) {
			s->once_done = true;
			s->once_status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
		}
	}
}

static void srv_accept(struct srv *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char peer[96];
	pid_t pid;
	int fd;

	memset(&ss, 0, sizeof(ss));
	fd = accept4(s->lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			pr_perror("accept");
		return;
	}
	peer_name(&ss, peer, sizeof(peer));
	if (s->n_kids >= s->o.max_clients) {
		pr_warn("refusing %s: busy (%d connections, --max-clients %d)", peer, s->n_kids,
			s->o.max_clients);
		ps_send_error(fd, EBUSY, 200, "busy: the page server serves %d connections",
			      s->n_kids);
		shutdown(fd, SHUT_WR);
		close(fd);
		return;
	}
	pid = fork();
	if (pid == 0)
		child_run(s, fd, peer);
	close(fd);
	if (pid < 0) {
		pr_perror("cannot fork for %s", peer);
		return;
	}
	pr_debug("%s served by child %d", peer, pid);
	kid_add(s, pid);
	if (s->o.once) {
		close(s->lfd); /* no further connections */
		s->lfd = -1;
	}
}

/* SIGTERM every child and wait for them (bounded, then SIGKILL). */
static void kids_stop(struct srv *s)
{
	uint64_t end = now_ns() + STOP_WAIT_MS * 1000000ull;
	for (int i = 0; i < s->o.max_clients; i++)
		if (s->kids[i])
			kill(s->kids[i], SIGTERM);
	while (s->n_kids > 0) {
		struct pollfd p = { .fd = s->sfd, .events = POLLIN };
		struct signalfd_siginfo si;
		kids_reap(s);
		if (!s->n_kids)
			break;
		if (now_ns() >= end) {
			for (int i = 0; i < s->o.max_clients; i++)
				if (s->kids[i])
					kill(s->kids[i], SIGKILL);
			end = now_ns() + STOP_WAIT_MS * 1000000ull;
		}
		if (poll(&p, 1, 100) > 0 && read(s->sfd, &si, sizeof(si)) < 0)
			break;
	}
}

static void srv_loop(struct srv *s)
{
	while (!s->stop && !(s->o.once && s->once_done)) {
		struct pollfd p[2] = { { .fd = s->sfd, .events = POLLIN },
				       { .fd = s->lfd, .events = POLLIN } };
		struct signalfd_siginfo si;
		if (poll(p, s->lfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_perror("poll");
			s->stop = true;
			break;
		}
		if (p[0].revents & POLLIN) {
			while (read(s->sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
					pr_info("stopping on signal %d", si.ssi_signo);
					s->stop = true;
				}
			}
			if (s->stop && s->lfd >= 0) { /* refuse new connections at once */
				close(s->lfd);
				s->lfd = -1;
			}
			kids_reap(s);
		}
		if (!s->stop && s->lfd >= 0 && (p[1].revents & POLLIN))
			srv_accept(s);
	}
}

static int srv_setup(struct srv *s)
{
	sigset_t set;
	int r;

	if (s->o.key_file && (r = ps_key_load(s->o.key_file, &s->key)) < 0)
		return r;
	if ((r = mkdir_p(s->o.dir, 0755)) < 0 && r != -EEXIST)
		return pr_err_ret(r, "cannot create '%s'", s->o.dir);
	s->dirfd = open(s->o.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return pr_perror("cannot open images directory '%s'", s->o.dir);
	s->kids = calloc(s->o.max_clients, sizeof(*s->kids));
	if (!s->kids)
		return pr_err_ret(-ENOMEM, "child table");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sfd < 0)
		return pr_perror("signalfd");
	if ((r = srv_listen(s)) < 0)
		return r;
	pr_info("listening on %s port %d, images in '%s'%s", s->o.address, s->o.port, s->o.dir,
		s->key.set ? ", key required" : "");
	if (s->o.pidfile && (r = write_pidfile(s->o.pidfile)) < 0)
		return r;
	s->pidfile_written = s->o.pidfile != NULL;
	return 0;
}

int pageserver_main(int argc, char **argv)
{
	struct srv s = {
		.o = { .address = "127.0.0.1",
		       .dir = ".",
		       .timeout_s = 60,
		       .max_clients = 16,
		       .verbosity = LOG_INFO },
		.dirfd = -1,
		.lfd = -1,
		.sfd = -1,
	};
	int r;

	log_set_prefix("pageserver");
	r = srv_parse(argc, argv, &s.o);
	if (r)
		return r == 1 ? 0 : 2;
	if ((r = log_init(s.o.log_file, s.o.verbosity)) < 0) {
		fprintf(stderr, "pageserver: error: cannot open log file '%s': %s\n", s.o.log_file,
			strerror(-r));
		return 1;
	}
	r = srv_setup(&s);
	if (r == 0) {
		srv_loop(&s);
		kids_stop(&s);
		r = s.o.once && s.once_done && !s.stop ? (s.once_status ? 1 : 0) : 0;
		pr_info("stopped");
	} else {
		r = 1;
	}
	if (s.pidfile_written)
		(void)unlink(s.o.pidfile);
	if (s.lfd >= 0)
		close(s.lfd);
	if (s.sfd >= 0)
		close(s.sfd);
	if (s.dirfd >= 0)
		close(s.dirfd);
	free(s.kids);
	return r;
}
