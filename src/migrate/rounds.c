/*
 * rounds: migrate's source-side sequence (docs/migrate.md "The pipeline"): the local
 * chain, pre-copy rounds with the stop rule, the final dump held for the hand-over, and
 * the summary.
 *
 * Local chain: <work>/rNNNN, the metadata half of every round (the page server holds the
 * whole round under the same name). The newest complete round (inventory.img present)
 * is the parent of the next; a cron `migrate --pre-dump` adds one round and exits, so a
 * later `migrate` continues the same chain and its first round is already a delta.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "migrate/mig-priv.h"
#include "migrate/throttle.h"
#include "net/net.h"
#include "pageserver/client.h"
#include "pageserver/sender.h"

#define MB (1024.0 * 1024.0)

/* Source id: --source-id, else HOSTNAME-PID with anything outside [A-Za-z0-9._-]
 * replaced (the server accepts only such names). */
static void source_name(struct mig *m)
{
	char host[64] = "host";
	if (m->source_id) {
		snprintf(m->source, sizeof(m->source), "%s", m->source_id);
		return;
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = 0;
	snprintf(m->source, sizeof(m->source), "%.40s-%d", host, m->pid);
	for (char *p = m->source; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			*p = '-';
	if (m->source[0] == '.')
		m->source[0] = '_';
}

/* The newest complete round rNNNN of the local chain (0: none); partial ones removed. */
static int chain_scan(struct mig *m)
{
	DIR *d = opendir(m->work);
	struct dirent *e;
	char path[PATH_MAX + 300];
	if (!d)
		return pr_perror("cannot open work directory '%s'", m->work);
	m->last = 0;
	while ((e = readdir(d))) {
		int n;
		if (e->d_name[0] != 'r' || strlen(e->d_name) != 5 ||
		    parse_int(e->d_name + 1, &n) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/inventory.img", m->work, e->d_name);
		if (access(path, F_OK) == 0 && n > m->last)
			m->last = n;
	}
	closedir(d);
	return 0;
}

/* Remove round n of the local chain. */
static void round_remove(const struct mig *m, int n)
{
	char dir[PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/r%04d", m->work, n);
	(void)rmdir_files_at(AT_FDCWD, dir);
}

static int work_setup(struct mig *m)
{
	source_name(m);
	if (m->work_arg)
		snprintf(m->work, sizeof(m->work), "%s", m->work_arg);
	else
		snprintf(m->work, sizeof(m->work), "/var/lib/ferry/migrate/%s", m->source);
	int r = mkdir_p(m->work, 0700);
	if (r < 0)
		return pr_err_ret(r, "cannot create work directory '%s'", m->work);
	return chain_scan(m);
}

static int client_open(struct mig *m)
{
	struct ps_client_opts o = {
		.address = m->host,
		.port = m->port,
		.auth_key = m->auth_key,
		.source_id = m->source,
		.compress = m->compress,
		.progress = !m->json,
		.pid = m->pid,
		.kind = IMG_KIND_PREDUMP,
		.timeout_ms = m->timeout_s * 1000,
	};
	if (m->bandwidth)
		ps_sender_set_rate(m->bandwidth);
	return ps_client_start(&o, &m->c);
}

/* The resident memory of the tree of pid (statm, every process reachable through
 * /proc/PID/task/TID/children, at most 4096), bytes; 0 if unknown. */
static uint64_t tree_rss(pid_t pid)
{
	pid_t q[4096];
	size_t n = 0, head = 0;
	uint64_t total = 0;
	char path[96], *buf = NULL;
	size_t len;

	q[n++] = pid;
	while (head < n) {
		pid_t p = q[head++];
		unsigned long long size, res;
		snprintf(path, sizeof(path), "/proc/%d/statm", p);
		if (read_file(path, &buf, &len, 4096) == 0 &&
		    sscanf(buf, "%llu %llu", &size, &res) == 2)
			total += res * page_size;
		free(buf);
		buf = NULL;
		snprintf(path, sizeof(path), "/proc/%d/task", p);
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%.16s/children", p, e->d_name);
			if (read_file(path, &buf, &len, 1 << 16) < 0)
				continue;
			char *sp = NULL;
			for (char *t = strtok_r(buf, " \n", &sp); t && n < 4096;
			     t = strtok_r(NULL, " \n", &sp)) {
				int c;
				if (parse_int(t, &c) == 0 && c > 0)
					q[n++] = c;
			}
			free(buf);
			buf = NULL;
		}
		if (d)
			closedir(d);
	}
	return total;
}

#define PART_FROM (512ull << 20) /* a smaller tree gains nothing from parts (measured) */
#define PART_MIN  (128ull << 20)
#define PARTS_MAX 8

/* Round 0 of a migration without a chain is copied in parts (pre-dump --max-bytes: a
 * quarter of the tree's memory each, at least 128 MiB, at most 8 parts, when the tree
 * has 512 MiB resident or more; --part-size sets it), each handed to the destination
 * for staging at once (MIG_WARM queued): the staging of one part runs while the next
 * is copied and sent (docs/migrate.md). 0: in one piece. */
static uint64_t part_bytes(const struct mig *m)
{
	if (m->pre_only || m->last)
		return 0;
	if (m->part_set)
		return m->part_size;
	uint64_t rss = tree_rss(m->pid);
	return rss < PART_FROM ? 0 : rss / 4 > PART_MIN ? rss / 4 : PART_MIN;
}

/* One round: pre-dump (tree keeps running) or the final dump (held for the hand-over).
 * Records its statistics. 0 or -errno (logged). */
static int round_run(struct mig *m, bool final)
{
	struct mig_round_rec *rr = &m->rounds[m->n_rounds];
	char dir[PATH_MAX + 16], prev[16];
	int n = m->last + 1;
	uint64_t t0 = now_ns(), part = final ? 0 : part_bytes(m);
	bool partial = false;

	memset(rr, 0, sizeof(*rr));
	rr->parts = 1;
again:
	snprintf(rr->name, sizeof(rr->name), "r%04d", n);
	snprintf(dir, sizeof(dir), "%s/%s", m->work, rr->name);
	snprintf(prev, sizeof(prev), "../r%04d", m->last);
	rr->final = final;
	struct ferry_opts o = {
		.pid = m->pid,
		.images_dir = dir,
		.prev_images_dir = m->last ? prev : NULL,
		.verbosity = m->verbosity,
		.on_frozen = final ? mig_handover : NULL,
		.on_frozen_arg = m,
		.frozen_at = final ? &m->t_freeze : NULL, /* the downtime starts there */
		.scan_ns = final ? NULL : &rr->scan_ns,
		/* the last part takes what is left; a cron run its --max-bytes */
		.max_bytes = m->pre_only	     ? m->cron_max
			     : rr->parts < PARTS_MAX ? part
						     : 0,
		.partial = &partial,
	};
	if (final) {
		struct net_opts no = { .tcp_established = m->tcp_established };
		net_opts_set(&no);
		m->t_freeze = t0; /* until dump freezes the tree */
	}
	ps_client_set_kind(m->c, final ? IMG_KIND_DUMP : IMG_KIND_PREDUMP);
	partial = false;
	int r = final ? dump_main(&o) : predump_main(&o);
	struct ps_round_info ri;
	/* (the hand-over may have closed the connection: its statistics are gone) */
	if (m->c && ps_client_last_round(m->c, &ri) == 0 && !strcmp(ri.name, rr->name)) {
		rr->bytes += ri.bytes;
		rr->wire += ri.wire;
	}
	rr->partial = partial;
	if (r == 0 && partial && !m->pre_only) { /* a part: staged while the next one is copied */
		double q;
		pr_info("round %s: part %d, %.1f MB so far: queued for staging", rr->name,
			rr->parts, rr->bytes / MB);
		if ((r = mig_warm(m, rr->name, 0, true, &q)) == 0) {
			m->last = n++;
			rr->parts++;
			goto again;
		}
	}
	/* a pre-copy round is staged at the destination before the next one starts (the
	 * stop rule sees the staging in the round's time); a cron round is not: nothing
	 * stays at the destination to hold it */
	if (r == 0 && !final && !m->pre_only)
		r = mig_warm(m, rr->name, rr->bytes, false, &rr->stage_s);
	rr->secs = (now_ns() - t0) / 1e9;
	rr->throttle = mig_throttle_pct(m->thr);
	if (m->n_rounds)
		rr->since_prev = (t0 - m->rounds[m->n_rounds - 1].t0_ns) / 1e9;
	rr->t0_ns = t0;
	if (r < 0)
		return r;
	m->last = n;
	m->n_rounds++;
	return 0;
}

/* --auto-converge: the rounds stopped shrinking: throttle the tree harder (20%, then
 * +10% per round, at most 99%, like QEMU). true if the pre-copy should go on. */
static bool converge(struct mig *m)
{
	int pct = mig_throttle_pct(m->thr);
	if (!m->auto_converge || pct >= 99)
		return false;
	if (!m->thr && mig_throttle_start(m->pid, &m->thr) < 0) {
		m->auto_converge = false; /* logged: stop as without the option */
		return false;
	}
	if (mig_throttle_set(m->thr, pct ? pct + 10 : 20) < 0)
		return false;
	return true;
}

/* Pre-copy until the stop rule says stop (or --pre-dump: one round). */
static int precopy(struct mig *m)
{
	for (;;) {
		if (ferry_cancel)
			return pr_err_ret(-EINTR, "interrupted by signal %d before the final round",
					  (int)ferry_cancel);
		if (m->n_rounds == MIG_MAX_ROUNDS - 1)
			break;
		int r = round_run(m, false);
		if (r < 0)
			return r;
		struct mig_round_rec *rr = &m->rounds[m->n_rounds - 1];
		struct mig_round rs[MIG_MAX_ROUNDS];
		for (int i = 0; i < m->n_rounds; i++)
			rs[i] = (struct mig_round){ .bytes = m->rounds[i].bytes,
						    .copy_s = m->rounds[i].secs,
						    .since_prev_s = m->rounds[i].since_prev,
						    .scan_s = m->rounds[i].scan_ns / 1e9 };
		rr->verdict = mig_stop_rule(&m->rule, rs, m->n_rounds, &rr->est);
		pr_info("round %s: %.1f MB in %.3f s (%.0f MB/s), dirty rate %.1f MB/s, predicted "
			"downtime %.0f ms: %s",
			rr->name, rr->bytes / MB, rr->secs, rr->est.bw / MB,
			rr->est.dirty_rate / MB,
			rr->est.predicted_s > 1e6 ? -1.0 : rr->est.predicted_s * 1e3,
			mig_verdict_name(rr->verdict));
		if (m->pre_only)
			return 0;
		if (rr->verdict == MIG_STOP_STALLED && converge(m))
			continue;
		if (rr->verdict != MIG_CONTINUE) {
			m->stop_reason = mig_verdict_name(rr->verdict);
			return 0;
		}
	}
	m->stop_reason = "max-rounds";
	return 0;
}

int mig_run(struct mig *m)
{
	int r;
	if ((r = work_setup(m)) < 0 || (r = client_open(m)) < 0)
		return r;
	if ((r = mig_stage(m, MIG_STAGE_PRE_DUMP)) < 0)
		return r;
	if ((r = precopy(m)) < 0 || m->pre_only)
		return r;
	if ((r = mig_stage(m, MIG_STAGE_NETWORK_LOCK)) < 0)
		return r;
	r = round_run(m, true);
	mig_throttle_stop(m->thr); /* quota and cgroup as they were (the tree is dead or runs) */
	m->thr = NULL;
	/* the tree is dead (handed over), resumed (rollback) or stopped (in doubt) */
	(void)mig_stage(m, MIG_STAGE_POST_DUMP);
	if (r < 0 || !m->handed_over)
		(void)mig_stage(m, MIG_STAGE_NETWORK_UNLOCK);
	/* a refused restore or hand-over: the destination dropped the final round, so do we
	 * (the next attempt continues the chain both sides still have). Failing before
	 * MIG_RESTORE, both keep it (a complete dump round: a valid parent); in doubt, keep
	 * everything. */
	if (r < 0 && r != -EINPROGRESS && m->restore_sent)
		round_remove(m, m->last + 1);
	else if (r < 0 && r != -EINPROGRESS && !m->handed_over)
		chain_scan(m);
	if (r == 0 && m->handed_over) {
		char lock[NETLOCK_NAME_MAX];
		/* the connections live at the destination now: nothing to hold here */
		(void)netlock_unlock(net_lock_name(lock, sizeof(lock), m->pid));
		(void)mig_stage(m, MIG_STAGE_POST_RESUME);
		for (int n = 1; n <= m->last; n++)
			round_remove(m, n);
		rmdir(m->work);
	}
	return r;
}

static void summary_json(const struct mig *m, int r)
{
	printf("{\"migrate\": {\"ok\": %s, \"pid\": %d, \"dest_pid\": %d, \"pidns\": %s, "
	       "\"stop\": \"%s\", \"downtime_ms\": %.3f, \"predicted_ms\": %.3f, "
	       "\"total_s\": %.3f, \"rounds\": [",
	       r == 0 ? "true" : "false", m->pid, m->dest_pid, m->dest_pidns ? "true" : "false",
	       m->stop_reason ? m->stop_reason : "",
	       m->t_running ? (m->t_running - m->t_freeze) / 1e6 : 0.0,
	       m->n_rounds > 1 ? m->rounds[m->n_rounds - 2].est.predicted_s * 1e3 : 0.0,
	       (m->t_end - m->t_start) / 1e9);
	for (int i = 0; i < m->n_rounds; i++) {
		const struct mig_round_rec *rr = &m->rounds[i];
		printf("%s{\"name\": \"%s\", \"final\": %s, \"bytes\": %llu, \"wire\": %llu, "
		       "\"seconds\": %.6f, \"stage_seconds\": %.6f, \"dirty_rate\": %.0f, "
		       "\"predicted_ms\": %.3f, \"throttle_pct\": %d, \"parts\": %d, "
		       "\"partial\": %s}",
		       i ? ", " : "", rr->name, rr->final ? "true" : "false",
		       (unsigned long long)rr->bytes, (unsigned long long)rr->wire, rr->secs,
		       rr->stage_s, rr->est.dirty_rate,
		       rr->est.predicted_s > 1e6 ? -1.0 : rr->est.predicted_s * 1e3, rr->throttle,
		       rr->parts, rr->partial ? "true" : "false");
	}
	printf("]}}\n");
	fflush(stdout);
}

void mig_summary(const struct mig *m, int r)
{
	((struct mig *)m)->t_end = now_ns();
	if (m->json) {
		summary_json(m, r);
		return;
	}
	if (r < 0 && !m->n_rounds)
		return;
	fprintf(stderr, "migrate: %d round%s", m->n_rounds, m->n_rounds == 1 ? "" : "s");
	for (int i = 0; i < m->n_rounds; i++)
		fprintf(stderr, "%s %s %.1f MB", i ? "," : ":",
			m->rounds[i].final ? "final" : m->rounds[i].name, m->rounds[i].bytes / MB);
	fputc('\n', stderr);
	if (m->handed_over)
		fprintf(stderr,
			"migrate: tree of %d runs on %s as pid %d%s; downtime %.1f ms "
			"(predicted %.1f ms), total %.2f s\n",
			m->pid, m->host, m->dest_pid, m->dest_pidns ? " (new pid namespace)" : "",
			(m->t_running - m->t_freeze) / 1e6,
			m->n_rounds > 1 ? m->rounds[m->n_rounds - 2].est.predicted_s * 1e3 : 0.0,
			(m->t_end - m->t_start) / 1e9);
}

void mig_free(struct mig *m)
{
	mig_throttle_stop(m->thr);
	m->thr = NULL;
	if (m->c)
		ps_client_finish(m->c, m->handed_over || m->pre_only);
	m->c = NULL;
}
