#ifndef DRV_COORD_H
#define DRV_COORD_H

/* The drover program's commands. Each takes the argv after the command name (argv[0] is the
 * command) and returns the process exit code:
 *   0 ok, 1 runtime failure (or: the job finished with dead items), 2 usage or spec error
 *   (nothing was written to Redis), 3 drover wait timed out, 4 the job was cancelled, 128+N
 *   stopped by signal N. */

#include "config.h"
#include "feed.h"

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

/* Parses a command's options and its one JOB argument (a valid job id). Returns -1 with *job
 * set (borrowed from argv) to go on, or the exit code: 0 after --help, EXIT_USAGE after an
 * error it printed, naming the command. */
int parse_job_args(const drv_opt *opts, const drv_cmd_doc *doc, int argc, char **argv, char **job);

#define EXIT_USAGE 2

/* The stdin feeder's heartbeat (submit --source -): written this often, and a beat older than
 * FEEDER_LOST_MS is a feeder gone (drover status, drover run). */
#define FEEDER_BEAT_MS 2000
#define FEEDER_LOST_MS 10000
#define EXIT_TIMEOUT   3
#define EXIT_CANCELLED 4

#endif
