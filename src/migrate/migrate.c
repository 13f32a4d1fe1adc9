/*
 * migrate: live migration of a process tree to a page server (docs/migrate.md).
 *
 *   migrate --to HOST:PORT [options] PID
 *   migrate --pre-dump --to HOST:PORT [options] PID      (one warm-up round, cron style)
 *
 * Source side only: connect (ps_client), pre-copy rounds (predump_main, streamed through
 * the image sink), the stop rule (stoprule.c), the final dump held frozen (dump's
 * on_frozen hook) during the hand-over (handover.c), the summary.
 *
 * Invariants: the tree is killed only by dump_main after on_frozen returned 0, which it
 * does only once the destination reported RUNNING (or, in doubt, STATE running). Every
 * other path resumes it. Rounds live in a local work directory (their metadata half),
 * numbered r0001, r0002...; the chain persists between invocations for cron use and is
 * removed once a migration succeeded.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/engine.h"
#include "img/img.h"
#include "migrate/action.h"
#include "migrate/migrate.h"
#include "migrate/mig-priv.h"
#include "migrate/stoprule.h"
#include "pageserver/client.h"
#include "pageserver/sender.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: migrate --to HOST:PORT [options] PID\n"
		"       migrate --pre-dump --to HOST:PORT [options] PID   (one warm-up round)\n"
		"\n"
		"Moves the process tree rooted at PID to the page server at HOST:PORT, which\n"
		"restores it; the source tree is killed only once it runs there.\n"
		"\n"
		"  --auth-key FILE      pre-shared key (required by a server not on loopback)\n"
		"  --max-downtime MS    stop pre-copying when the freeze is predicted to fit (300)\n"
		"  --max-iters N        at most N pre-copy rounds (10)\n"
		"  --bandwidth RATE     cap the stream, bytes/s with K/M/G suffixes (unlimited)\n"
		"  --part-size SIZE     copy round 0 in parts of SIZE, each staged at the\n"
		"                       destination while the next is sent; 0: in one piece\n"
		"                       (default: a quarter of the tree's memory from 512 MiB)\n"
		"  --max-bytes SIZE     with --pre-dump: copy at most SIZE this run (a partial\n"
		"                       round: the next run or the migration copies the rest)\n"
		"  --auto-converge      throttle a tree that dirties faster than the link (cpu quota)\n"
		"  --compress on|off|auto   lz4 on the wire (auto)\n"
		"  --pidns              restore into a new pid namespace at the destination\n"
		"  --tcp-established    move established TCP connections (the destination must\n"
		"                       own their addresses: docs/migrate.md)\n"
		"  --action-script FILE run FILE at each stage (FERRY_STAGE=...)\n"
		"  --work-dir DIR       local half of the rounds (/var/lib/ferry/migrate/SOURCE)\n"
		"  --source-id NAME     the chain's name on the server (HOSTNAME-PID)\n"
		"  --timeout SEC        per wait on the destination (60)\n"
		"  --json               print the summary as JSON on stdout\n"
		"  -v[v...], -o FILE    verbosity, log file\n");
}

enum {
	O_TO = 256,
	O_PRE,
	O_KEY,
	O_DOWNTIME,
	O_ITERS,
	O_BW,
	O_COMPRESS,
	O_PIDNS,
	O_ACTION,
	O_WORK,
	O_SOURCE,
	O_TIMEOUT,
	O_JSON,
	O_TCP,
	O_CONVERGE,
	O_PART,
	O_MAXB,
};

static const struct option mig_long[] = {
	{ "to", required_argument, NULL, O_TO },
	{ "pre-dump", no_argument, NULL, O_PRE },
	{ "auth-key", required_argument, NULL, O_KEY },
	{ "max-downtime", required_argument, NULL, O_DOWNTIME },
	{ "max-iters", required_argument, NULL, O_ITERS },
	{ "bandwidth", required_argument, NULL, O_BW },
	{ "compress", required_argument, NULL, O_COMPRESS },
	{ "pidns", no_argument, NULL, O_PIDNS },
	{ "action-script", required_argument, NULL, O_ACTION },
	{ "work-dir", required_argument, NULL, O_WORK },
	{ "source-id", required_argument, NULL, O_SOURCE },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "json", no_argument, NULL, O_JSON },
	{ "tcp-established", no_argument, NULL, O_TCP },
	{ "auto-converge", no_argument, NULL, O_CONVERGE },
	{ "part-size", required_argument, NULL, O_PART },
	{ "max-bytes", required_argument, NULL, O_MAXB },
	{ "tree", required_argument, NULL, 't' },
	{ "log-file", required_argument, NULL, 'o' },
	{ "verbosity", optional_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* HOST:PORT, [V6]:PORT. 0 or -EINVAL. */
static int parse_to(struct mig *m, const char *s)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s)
		return -EINVAL;
	size_t n = colon - s;
	if (s[0] == '[' && n >= 2 && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n >= sizeof(m->host))
		return -EINVAL;
	memcpy(m->host, s, n);
	m->host[n] = 0;
	if (parse_int(colon + 1, &m->port) < 0 || m->port <= 0 || m->port > 65535)
		return -EINVAL;
	return 0;
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "migrate: error: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 2;
}

static int parse_num_opt(int c, const char *arg, struct mig *m)
{
	int v;
	uint64_t u = 0;
	switch (c) {
	case O_DOWNTIME:
		if (parse_int(arg, &v) < 0 || v <= 0)
			return bad("--max-downtime needs milliseconds > 0, got '%s'", arg);
		m->rule.max_downtime_s = v / 1000.0;
		return 0;
	case O_ITERS:
		if (parse_int(arg, &v) < 0 || v <= 0 || v > MIG_MAX_ROUNDS - 2)
			return bad("--max-iters needs 1..60, got '%s'", arg);
		m->rule.max_iters = v;
		return 0;
	case O_BW:
		if (parse_size(arg, &u) < 0)
			return bad("--bandwidth needs a rate such as 100M (bytes/s), got '%s'",
				   arg);
		m->bandwidth = u;
		return 0;
	case O_PART:
		if (strcmp(arg, "0") && parse_size(arg, &u) < 0)
			return bad("--part-size needs a size such as 256M, or 0, got '%s'", arg);
		m->part_size = strcmp(arg, "0") ? u : 0;
		m->part_set = true;
		return 0;
	case O_MAXB:
		if (parse_size(arg, &u) < 0)
			return bad("--max-bytes needs a size such as 256M, got '%s'", arg);
		m->cron_max = u;
		return 0;
	case O_TIMEOUT:
		if (parse_int(arg, &v) < 0 || v <= 0 || v > 86400)
			return bad("--timeout needs seconds > 0, got '%s'", arg);
		m->timeout_s = v;
		return 0;
	case 't':
		if (parse_int(arg, &v) < 0 || v <= 0)
			return bad("-t needs a positive PID, got '%s'", arg);
		m->pid = v;
		return 0;
	}
	return 2;
}

static int parse_args(int argc, char **argv, struct mig *m)
{
	int c, r;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:o:v::h", mig_long, NULL)) != -1) {
		switch (c) {
		case O_TO:
			if (parse_to(m, optarg) < 0)
				return bad("--to needs HOST:PORT, got '%s'", optarg);
			break;
		case O_PRE:
			m->pre_only = true;
			break;
		case O_KEY:
			m->auth_key = optarg;
			break;
		case O_COMPRESS:
			if ((m->compress = ps_compress_parse(optarg)) < 0)
				return bad("--compress takes on, off or auto, got '%s'", optarg);
			break;
		case O_PIDNS:
			m->pidns = true;
			break;
		case O_ACTION:
			m->action = optarg;
			break;
		case O_WORK:
			m->work_arg = optarg;
			break;
		case O_SOURCE:
			m->source_id = optarg;
			break;
		case O_JSON:
			m->json = true;
			break;
		case O_TCP:
			m->tcp_established = true;
			break;
		case O_CONVERGE:
			m->auto_converge = true;
			break;
		case 'o':
			m->log_file = optarg;
			break;
		case 'v':
			if (log_verbosity_arg(optarg, &m->verbosity) < 0)
				return bad("bad verbosity '%s'", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			return bad("option '%s' needs an argument", argv[optind - 1]);
		case '?':
			return bad("unknown option '%s' (see migrate --help)", argv[optind - 1]);
		default:
			if ((r = parse_num_opt(c, optarg, m)) != 0)
				return r;
		}
	}
	if (optind < argc && !m->pid) {
		int v;
		if (parse_int(argv[optind], &v) < 0 || v <= 0)
			return bad("PID must be a positive number, got '%s'", argv[optind]);
		m->pid = v;
		optind++;
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	if (!m->host[0])
		return bad("%s", "--to HOST:PORT is required");
	if (!m->pid)
		return bad("%s", "the PID of the tree to migrate is required");
	if (m->cron_max && !m->pre_only)
		return bad("%s", "--max-bytes is for --pre-dump runs (a migration: --part-size)");
	return 0;
}

/* SIGINT/SIGTERM: ask the engine to stop at its next safe point (the tree resumes). */
static void on_signal(int sig)
{
	ferry_cancel = sig;
}

static void signals_install(void)
{
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: waits wake up */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int migrate_main(int argc, char **argv)
{
	struct mig m = { .verbosity = LOG_INFO, .compress = PS_COMPRESS_AUTO, .timeout_s = 60 };
	int r;

	log_set_prefix("migrate");
	mig_rule_defaults(&m.rule);
	if ((r = parse_args(argc, argv, &m)) != 0)
		return r;
	if ((r = log_init(m.log_file, m.verbosity)) < 0) {
		fprintf(stderr, "migrate: error: cannot open log file '%s': %s\n", m.log_file,
			strerror(-r));
		return 1;
	}
	signals_install();
	m.t_start = now_ns();
	r = mig_run(&m);
	mig_summary(&m, r);
	mig_free(&m);
	if (r == -EINPROGRESS)
		return 3; /* hand-over in doubt: the tree is stopped here, see the message */
	return r < 0 ? 1 : 0;
}
