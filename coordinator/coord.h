#ifndef DRV_COORD_H
#define DRV_COORD_H

/* The drover program's commands. Each takes the argv after the command name (argv[0] is the
 * command) and returns the process exit code:
 *   0 ok, 1 runtime failure (or: the job finished with dead items), 2 usage or spec error
 *   (nothing was written to Redis), 3 drover wait timed out, 4 the job was cancelled, 128+N
 *   stopped by signal N. */

#include "config.h"
#include "feed.h"

struct cJSON;

int cmd_submit(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_dead(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_results(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_workers(int argc, char **argv);
int cmd_drain(int argc, char **argv);
int cmd_purge(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_web(int argc, char **argv);

/* Parses a command's options and its one JOB argument (a valid job id). Returns -1 with *job
 * set (borrowed from argv) to go on, or the exit code: 0 after --help, EXIT_USAGE after an
 * error it printed, naming the command. */
int parse_job_args(const drv_opt *opts, const drv_cmd_doc *doc, int argc, char **argv, char **job);

/* The object drover status JOB --json prints (with_parts: with one row per partition; else
 * "partitions" is their count, as drover list --json prints it). The one place its numbers
 * are computed, so drover web and the command line never disagree. */
drv_err drv_status_json(drv_queue *q, const char *id, int with_parts, struct cJSON **out);
/* One worker as drover workers --json prints it; now_ms is Redis time. */
struct cJSON *drv_worker_json(const drv_worker_info *w, int64_t now_ms);

/* The steering actions, for the command line and drover web alike. On failure 'why' says
 * what went wrong in a sentence; DRV_EINVAL: refused as asked (the job's state, a value). */
drv_err drv_admin_transition(drv_queue *q, const drv_job *job, const char *from, const char *to,
                             char *why, size_t whylen);
/* Moves dead items back to pending: the ids[0..nids) when ids is not NULL, else those whose
 * error holds match when it is not NULL, else all. A done job runs again. */
drv_err drv_admin_retry(drv_queue *q, const drv_job *job, const char *const *ids, size_t nids,
                        const char *match, int64_t *revived, char *why, size_t whylen);
/* Deletes a finished job's keys (force: also a running one). */
drv_err drv_admin_purge(drv_queue *q, const char *id, int force, int64_t *swept, char *why,
                        size_t whylen);
/* drover set JOB rate=R max_in_flight=N; -1 leaves one as it is. */
drv_err drv_admin_set_limits(drv_queue *q, drv_job *job, long long rate, long long max_in_flight,
                             char *why, size_t whylen);

#define EXIT_USAGE 2
/* The stdin feeder's heartbeat (submit --source -): written this often, and a beat older than
 * FEEDER_LOST_MS is a feeder gone (drover status, drover run). */
#define FEEDER_BEAT_MS 2000
#define FEEDER_LOST_MS 10000
#define EXIT_TIMEOUT   3
#define EXIT_CANCELLED 4

#endif
