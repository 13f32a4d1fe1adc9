/*
 * main: command-line parsing and dispatch. One binary: `ferry <command>`, and the
 * names `migrate` and `pageserver` (argv[0]) for the live-migration commands.
 * Exit status: 0 success, 1 failure (one error line on stderr), 2 usage or not
 * implemented; `ferry restore` without -d exits with the restored process's status.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/rst-warm.h"
#include "pageserver/pageserver.h"
#include "img/img.h"
#include "migrate/migrate.h"
#include "net/net.h"
#include "pageserver/client.h"
#include "pageserver/sender.h"

#define FERRY_VERSION "0.1"

static void usage(FILE *f)
{
	fprintf(f,
		"ferry " FERRY_VERSION ": live migration of Linux processes\n"
		"\n"
		"Usage:\n"
		"  ferry dump -t PID -D DIR [--leave-running] [--shell-job] [--tcp-established]\n"
		"             [--prev-images-dir REL [--track-mem]]\n"
		"  ferry pre-dump -t PID -D DIR [--prev-images-dir REL] [--max-bytes SIZE]\n"
		"             (--max-bytes: copy at most SIZE of pages, the next round the rest)\n"
		"  dump and pre-dump stream to a page server with:\n"
		"             --page-server --port N [--address A] [--auth-key FILE]\n"
		"             [--compress on|off|auto] [--source-id NAME] [--json]\n"
		"             (page data goes only to the server; -D keeps the metadata)\n"
		"  ferry restore -D DIR [-d] [--pidfile FILE] [--shell-job] [--pidns] [--warm]\n"
		"             (--warm: stage the pre-dump chain first, as a migration's warm\n"
		"             destination does, and build the memory from it)\n"
		"  ferry net-unlock -t PID  remove the network lock a dump of the tree of PID\n"
		"             left for its TCP connections (restore removes it itself)\n"
		"  ferry check [--json]\n"
		"  ferry show FILE|DIR\n"
		"  pageserver --port N [--address A] [-D DIR] [--auth-key FILE] [--once]\n"
		"             (also ferry pageserver; see pageserver --help)\n"
		"  migrate --to HOST:PORT [--pre-dump] [options] PID\n"
		"             (also ferry migrate; see migrate --help)\n"
		"\n"
		"Common options:\n"
		"  -v[v...], -v N   verbosity (0 errors .. 4 trace; default 2)\n"
		"  -o, --log-file FILE   write the log to FILE instead of stderr\n"
		"  -h, --help       this help\n");
}

enum {
	OPT_LEAVE_RUNNING = 256,
	OPT_SHELL_JOB,
	OPT_PIDFILE,
	OPT_PREV,
	OPT_TRACK_MEM,
	OPT_JSON,
	OPT_VERSION,
	OPT_PIDNS,
	OPT_PAGE_SERVER,
	OPT_ADDRESS,
	OPT_PORT,
	OPT_AUTH_KEY,
	OPT_COMPRESS,
	OPT_SOURCE_ID,
	OPT_TCP_ESTABLISHED,
	OPT_WARM,
	OPT_MAX_BYTES,
};

/* dump / pre-dump --page-server: the client's options (engine.h knows nothing of it) */
static bool g_page_server;
static bool g_ps_opt_seen; /* a page-server option was given */
static struct ps_client_opts g_ps = { .compress = PS_COMPRESS_AUTO };
/* --tcp-established: handed to src/net (net_opts_set) */
static bool g_tcp_established;
static bool g_warm; /* restore --warm */

static const struct option long_opts[] = {
	{ "tree", required_argument, NULL, 't' },
	{ "images-dir", required_argument, NULL, 'D' },
	{ "log-file", required_argument, NULL, 'o' },
	{ "verbosity", optional_argument, NULL, 'v' },
	{ "restore-detached", no_argument, NULL, 'd' },
	{ "leave-running", no_argument, NULL, OPT_LEAVE_RUNNING },
	{ "shell-job", no_argument, NULL, OPT_SHELL_JOB },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "prev-images-dir", required_argument, NULL, OPT_PREV },
	{ "track-mem", no_argument, NULL, OPT_TRACK_MEM },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "pidns", no_argument, NULL, OPT_PIDNS },
	{ "page-server", no_argument, NULL, OPT_PAGE_SERVER },
	{ "address", required_argument, NULL, OPT_ADDRESS },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "auth-key", required_argument, NULL, OPT_AUTH_KEY },
	{ "compress", required_argument, NULL, OPT_COMPRESS },
	{ "source-id", required_argument, NULL, OPT_SOURCE_ID },
	{ "tcp-established", no_argument, NULL, OPT_TCP_ESTABLISHED },
	{ "warm", no_argument, NULL, OPT_WARM },
	{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* One page-server option of dump / pre-dump. 0, or -EINVAL (printed). */
static int parse_ps_opt(int c, const char *arg)
{
	g_ps_opt_seen = true;
	switch (c) {
	case OPT_PAGE_SERVER:
		g_page_server = true;
		return 0;
	case OPT_ADDRESS:
		g_ps.address = arg;
		return 0;
	case OPT_PORT:
		if (parse_int(arg, &g_ps.port) == 0 && g_ps.port > 0 && g_ps.port <= 65535)
			return 0;
		fprintf(stderr, "ferry: error: --port needs a port number 1-65535, got '%s'\n",
			arg);
		return -EINVAL;
	case OPT_AUTH_KEY:
		g_ps.auth_key = arg;
		return 0;
	case OPT_COMPRESS:
		g_ps.compress = ps_compress_parse(arg);
		if (g_ps.compress >= 0)
			return 0;
		fprintf(stderr, "ferry: error: --compress takes on, off or auto, got '%s'\n", arg);
		return -EINVAL;
	default:
		g_ps.source_id = arg;
		return 0;
	}
}

/* Parse options after the command word. Returns 0, or 2 on a usage error (printed). */
static int parse_opts(int argc, char **argv, struct ferry_opts *o)
{
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:D:o:v::dh", long_opts, NULL)) != -1) {
		switch (c) {
		case 't': {
			int pid;
			if (parse_int(optarg, &pid) < 0 || pid <= 0) {
				fprintf(stderr, "ferry: error: -t needs a positive PID, got '%s'\n",
					optarg);
				return 2;
			}
			o->pid = pid;
			break;
		}
		case 'D':
			o->images_dir = optarg;
			break;
		case 'o':
			o->log_file = optarg;
			break;
		case 'v':
			if (log_verbosity_arg(optarg, &o->verbosity) < 0) {
				fprintf(stderr, "ferry: error: bad verbosity '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
			o->detach = true;
			break;
		case OPT_LEAVE_RUNNING:
			o->leave_running = true;
			break;
		case OPT_SHELL_JOB:
			o->shell_job = true;
			break;
		case OPT_PIDFILE:
			o->pidfile = optarg;
			break;
		case OPT_PREV:
			o->prev_images_dir = optarg;
			break;
		case OPT_TRACK_MEM:
			o->track_mem = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_PIDNS:
			o->pidns = true;
			break;
		case OPT_TCP_ESTABLISHED:
			g_tcp_established = true;
			break;
		case OPT_WARM:
			g_warm = true;
			break;
		case OPT_MAX_BYTES:
			if (parse_size(optarg, &o->max_bytes) < 0) {
				fprintf(stderr,
					"ferry: error: --max-bytes needs a size such as 256M, got "
					"'%s'\n",
					optarg);
				return 2;
			}
			break;
		case OPT_PAGE_SERVER:
		case OPT_ADDRESS:
		case OPT_PORT:
		case OPT_AUTH_KEY:
		case OPT_COMPRESS:
		case OPT_SOURCE_ID:
			if (parse_ps_opt(c, optarg) < 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("ferry " FERRY_VERSION "\n");
			exit(0);
		case ':':
			fprintf(stderr, "ferry: error: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "ferry: error: unknown option '%s' (see ferry --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	return 0;
}

/* The page server restores migrated trees: migrate's frames (docs/migrate.md). */
static const struct ps_ext mig_ext = { .frame = mig_dest_frame };

static int run_pageserver(int argc, char **argv)
{
	pageserver_set_ext(&mig_ext);
	return pageserver_main(argc, argv);
}

static int exit_code(int r)
{
	return r < 0 ? 1 : r;
}

/* Page-server options belong to dump and pre-dump and need --page-server --port. */
static int check_ps_opts(const char *cmd)
{
	bool dumps = !strcmp(cmd, "dump") || !strcmp(cmd, "pre-dump");
	if (g_ps_opt_seen && !dumps) {
		fprintf(stderr, "ferry: error: page-server options are for dump and pre-dump\n");
		return 2;
	}
	if (g_ps_opt_seen && !g_page_server) {
		fprintf(stderr, "ferry: error: --address, --port, --auth-key, --compress and "
				"--source-id need --page-server\n");
		return 2;
	}
	if (g_page_server && !g_ps.port) {
		fprintf(stderr, "ferry: error: --page-server needs --port N\n");
		return 2;
	}
	return 0;
}

/* dump / pre-dump, streamed to a page server with --page-server: the client's sink
 * is installed before the command and its statistics printed after it. */
static int run_dump(const struct ferry_opts *o, bool pre)
{
	struct ps_client *c = NULL;
	struct net_opts no = { .tcp_established = g_tcp_established,
			       .leave_running = o->leave_running };
	net_opts_set(&no);
	if (g_page_server) {
		g_ps.json = o->json;
		g_ps.progress = true;
		g_ps.pid = o->pid;
		g_ps.kind = pre ? IMG_KIND_PREDUMP : IMG_KIND_DUMP;
		if (ps_client_start(&g_ps, &c) < 0)
			return 1;
	}
	int r = pre ? predump_main(o) : dump_main(o);
	int f = ps_client_finish(c, r == 0);
	return exit_code(r < 0 ? r : f);
}

/* restore; with --warm, the chain is staged first (rst-warm.h): what cannot be staged
 * restores cold, as without it. */
static int run_restore(struct ferry_opts *o, int *status)
{
	struct rst_warm *w = NULL;
	if (g_warm && rst_warm_new(&w) == 0 && rst_warm_final(w, o->images_dir) == 0)
		o->warm = w;
	int r = restore_main(o, status);
	o->warm = NULL;
	rst_warm_free(w);
	return r;
}

int main(int argc, char **argv)
{
	struct ferry_opts o = { .verbosity = LOG_INFO };
	const char *prog = basename(argv[0]);
	const char *cmd;
	int r;

	util_init();
	log_set_prefix("ferry");
	if (!strcmp(prog, "pageserver"))
		return run_pageserver(argc, argv);
	if (!strcmp(prog, "migrate"))
		return migrate_main(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("ferry " FERRY_VERSION "\n");
		return 0;
	}
	if (!strcmp(cmd, "pageserver")) /* its own options */
		return run_pageserver(argc - 1, argv + 1);
	if (!strcmp(cmd, "migrate")) /* its own options */
		return migrate_main(argc - 1, argv + 1);
	r = parse_opts(argc - 1, argv + 1, &o);
	if (r)
		return r;
	r = check_ps_opts(cmd);
	if (r)
		return r;
	if (o.max_bytes && strcmp(cmd, "pre-dump")) {
		fprintf(stderr, "ferry: error: --max-bytes is a pre-dump option\n");
		return 2;
	}
	r = log_init(o.log_file, o.verbosity);
	if (r < 0) {
		fprintf(stderr, "ferry: error: cannot open log file '%s': %s\n", o.log_file,
			strerror(-r));
		return 1;
	}

	if (!strcmp(cmd, "dump")) {
		if (!o.pid || !o.images_dir) {
			fprintf(stderr, "ferry: error: dump needs -t PID and -D DIR\n");
			return 2;
		}
		return run_dump(&o, false);
	}
	if (!strcmp(cmd, "restore")) {
		int status = 0;
		if (!o.images_dir) {
			fprintf(stderr, "ferry: error: restore needs -D DIR\n");
			return 2;
		}
		r = run_restore(&o, &status);
		if (r < 0)
			return 1;
		if (o.detach)
			return 0;
		if (WIFEXITED(status))
			return WEXITSTATUS(status);
		if (WIFSIGNALED(status))
			return 128 + WTERMSIG(status);
		return 0;
	}
	if (!strcmp(cmd, "check"))
		return check_main(&o);
	if (!strcmp(cmd, "net-unlock")) {
		char name[NETLOCK_NAME_MAX];
		if (!o.pid) {
			fprintf(stderr, "ferry: error: net-unlock needs -t PID\n");
			return 2;
		}
		return exit_code(netlock_unlock(net_lock_name(name, sizeof(name), o.pid)));
	}
	if (!strcmp(cmd, "show")) {
		/* show takes a positional path after the options */
		if (optind + 1 >= argc) {
			fprintf(stderr, "ferry: error: show needs FILE or DIR\n");
			return 2;
		}
		return exit_code(show_main(argv[optind + 1]));
	}
	if (!strcmp(cmd, "pre-dump"))
		return run_dump(&o, true);
	fprintf(stderr, "ferry: error: unknown command '%s' (see ferry --help)\n", cmd);
	return 2;
}
