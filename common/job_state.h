#ifndef DRV_JOB_STATE_H
#define DRV_JOB_STATE_H

/* A job's state. Redis holds it by name (the job hash's and every partition state hash's
 * "state" field, which the scripts read); C code compares these values, and the names are
 * spelled only in job_state.c. */
typedef enum drv_job_state {
    DRV_JOB_UNKNOWN = 0, /* a name drover does not write */
    DRV_JOB_CREATING,    /* submit is half way: the job is not listed yet */
    DRV_JOB_RUNNING,
    DRV_JOB_PAUSED,
    DRV_JOB_CANCELLED,
    DRV_JOB_DONE,
    DRV_JOB_MISSING, /* a partition without a state hash (drv_part_stat only) */
} drv_job_state;

/* "running", "paused", ...; "unknown" for DRV_JOB_UNKNOWN. Static storage. */
const char *drv_job_state_name(drv_job_state s);
/* The state of a name (as Redis holds it); DRV_JOB_UNKNOWN for NULL or any other text. */
drv_job_state drv_job_state_parse(const char *name);
/* 1 for done and cancelled: the job's end, nothing more is handed out. */
int drv_job_state_finished(drv_job_state s);

#endif
