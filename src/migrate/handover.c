/*
 * handover: the source's side of the hand-over (docs/migrate.md "Hand-over"), run by
 * dump_main as its on_frozen hook: the final round is committed on the server and the
 * tree is still frozen here.
 *
 *   MIG_RESTORE -> MIG_RESTORED (the destination built the tree and holds it)
 *   MIG_HANDOVER -> MIG_RUNNING (it runs there): return 0, dump kills our tree
 *
 * Any failure before HANDOVER was sent returns an error: dump resumes the tree and the
 * destination discards its copy (on our close). After HANDOVER was sent, a lost answer
 * is resolved by asking the server (MIG_STATUS on new connections, bounded retries):
 * "running" is success, "discarded" a rollback, "none" (not decided yet) asks again; no
 * decision at all returns -EINPROGRESS: dump leaves the tree stopped (SIGSTOP), never
 * running twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "migrate/action.h"
#include "migrate/mig-priv.h"
#include "migrate.pb-c.h"
#include "pageserver/client.h"
#include "pageserver/wire.h"

#define RESOLVE_TRIES	 10
#define RESOLVE_DELAY_MS 2000

int mig_stage(struct mig *m, const char *stage)
{
	char pid[32], dest[300], round[32];
	if (!m->action)
		return 0;
	snprintf(pid, sizeof(pid), "FERRY_PID=%d", m->pid);
	snprintf(dest, sizeof(dest), "FERRY_DEST=%s:%d", m->host, m->port);
	snprintf(round, sizeof(round), "FERRY_ROUND=%d", m->last);
	char *env[] = { pid, dest, round, NULL };
	int r = mig_action(m->action, stage, env, m->timeout_s);
	/* only the stages before anything irreversible may abort */
	if (r < 0 && (!strcmp(stage, MIG_STAGE_PRE_DUMP) || !strcmp(stage, MIG_STAGE_PRE_RESTORE) ||
		      !strcmp(stage, MIG_STAGE_NETWORK_LOCK)))
		return r;
	return 0;
}

int mig_warm(struct mig *m, const char *round, uint64_t bytes, bool queue, double *stage_s)
{
	ProtobufCMessage *rep = NULL;
	MigWarm req = MIG_WARM__INIT;
	req.round = (char *)round;
	req.has_queue = queue;
	req.queue = queue;
	/* staging writes the round into fresh memory: --timeout, plus the round at a
	 * pessimistic 50 MB/s (the destination gives up at 10 minutes); a queued round is
	 * answered at once, the next wait covers it (bytes: everything queued) */
	uint64_t tmo_s = (uint64_t)m->timeout_s + (queue ? 0 : bytes / (50u << 20));
	int r = ps_client_call(m->c, PS_MIG_WARM, &req.base, PS_MIG_WARMED, &mig_warmed__descriptor,
			       &rep, (int)(tmo_s > 660 ? 660 : tmo_s) * 1000);
	if (r < 0)
		return r;
	MigWarmed *w = (MigWarmed *)rep;
	*stage_s = w->stage_us / 1e6;
	if (w->ok && w->has_queued && w->queued)
		pr_debug("round %s queued for staging at the destination", round);
	else if (w->ok)
		pr_info("round %s staged at the destination: %.1f MB in %.1f ms", round,
			w->bytes / 1048576.0, w->stage_us / 1e3);
	else
		pr_warn("round %s not staged at the destination (%s): its final restore will "
			"be cold",
			round, w->cause ? w->cause : "no cause given");
	protobuf_c_message_free_unpacked(rep, NULL);
	return 0;
}

/* Ask a new connection what became of the final round's hand-over. 1 running, 0
 * discarded, -EAGAIN not decided yet, -errno unreachable. */
static int status_once(struct mig *m, const char *round)
{
	struct ps_client_opts o = { .address = m->host,
				    .port = m->port,
				    .auth_key = m->auth_key,
				    .source_id = m->source,
				    .pid = m->pid,
				    .timeout_ms = 5000,
				    .no_sink = true };
	struct ps_client *c;
	MigStatus req = MIG_STATUS__INIT;
	ProtobufCMessage *rep = NULL;
	int r = ps_client_start(&o, &c);
	if (r < 0)
		return r;
	req.round = (char *)round;
	r = ps_client_call(c, PS_MIG_STATUS, &req.base, PS_MIG_STATE, &mig_state__descriptor, &rep,
			   5000);
	ps_client_finish(c, r == 0);
	if (r < 0)
		return r;
	MigState *st = (MigState *)rep;
	int running = !strcmp(st->state, "running")	? 1
		      : !strcmp(st->state, "discarded") ? 0
							: -EAGAIN;
	if (running == 1 && st->has_pid)
		m->dest_pid = st->pid;
	pr_info("destination reports the hand-over of round %s as '%s'%s%s", round, st->state,
		st->cause ? ": " : "", st->cause ? st->cause : "");
	protobuf_c_message_free_unpacked(rep, NULL);
	return running;
}

static int resolve(struct mig *m, const char *round)
{
	for (int i = 0; i < RESOLVE_TRIES; i++) {
		int r = status_once(m, round);
		if (r == 1) {
			m->t_running = now_ns();
			m->handed_over = true;
			return 0;
		}
		if (r == 0)
			return pr_err_ret(-ECONNABORTED, "the destination discarded the tree: "
							 "resuming it here");
		usleep(RESOLVE_DELAY_MS * 1000);
	}
	pr_err("hand-over in doubt: the destination %s:%d is unreachable after HANDOVER; the "
	       "tree is left stopped here (SIGSTOP). If it runs there (`ls %s` on the server "
	       "shows 'handover'), kill it here; else resume it with kill -CONT",
	       m->host, m->port, round);
	return -EINPROGRESS;
}

int mig_handover(void *arg)
{
	struct mig *m = arg;
	const char *round = m->rounds[m->n_rounds].name; /* the final round, not counted yet */
	ProtobufCMessage *rep = NULL;
	int r;

	if ((r = mig_stage(m, MIG_STAGE_PRE_RESTORE)) < 0)
		return r;
	MigRestore req = MIG_RESTORE__INIT;
	req.round = (char *)round;
	req.has_pidns = req.pidns = m->pidns;
	req.has_timeout_s = true;
	req.timeout_s = 120;
	m->restore_sent = true;
	r = ps_client_call(m->c, PS_MIG_RESTORE, &req.base, PS_MIG_RESTORED,
			   &mig_restored__descriptor, &rep, (int)(req.timeout_s + 10) * 1000);
	if (r < 0)
		return r; /* logged, quoting the destination's cause */
	MigRestored *rd = (MigRestored *)rep;
	m->dest_pid = rd->pid;
	m->dest_pidns = rd->pidns;
	pr_info("destination restored the tree as pid %d%s in %.1f ms; handing over", rd->pid,
		rd->pidns ? " (new pid namespace)" : "", rd->restore_us / 1e3);
	protobuf_c_message_free_unpacked(rep, NULL);
	(void)mig_stage(m, MIG_STAGE_POST_RESTORE);
	(void)mig_stage(m, MIG_STAGE_PRE_RESUME);
	if (ferry_cancel)
		return pr_err_ret(-EINTR, "interrupted by signal %d before the hand-over",
				  (int)ferry_cancel);
	r = ps_client_call(m->c, PS_MIG_HANDOVER, NULL, PS_MIG_RUNNING, &mig_running__descriptor,
			   &rep, m->timeout_s * 1000);
	if (r == 0) {
		m->t_running = now_ns();
		m->handed_over = true;
		protobuf_c_message_free_unpacked(rep, NULL);
		return 0;
	}
	/* Did the destination act on HANDOVER? Close this connection (a destination that
	 * did not get it discards on EOF) and ask on a new one. */
	pr_warn("no answer to HANDOVER: asking the destination what it did");
	ps_client_finish(m->c, false);
	m->c = NULL;
	return resolve(m, round);
}
