#ifndef DRV_ERR_H
#define DRV_ERR_H

/* Every fallible function in drover returns a drv_err. Results go through out-parameters; after
 * a failure the caller does not read them (some are partly written) unless the function's
 * comment says what they hold then.
 *
 * The message for a failure: a module that holds a connection keeps the text of its last
 * call, as hiredis does (every failure sets it, a success clears it), and gives callers the
 * message with one function: drv_queue_strerror(q, e) (queue.h). Functions without such a
 * handle write the message into a caller's 'why' buffer where they have more to say than the
 * code; otherwise drv_strerror(e) is the message. */
typedef enum drv_err {
    DRV_OK = 0,
    DRV_ENOMEM,     /* allocation failed */
    DRV_EINVAL,     /* bad input: a spec, a flag, a URL */
    DRV_EIO,        /* a connection or file failed; retrying may help */
    DRV_EREPLY,     /* Redis answered with an error on a healthy connection, or with a reply
                     * drover cannot use */
    DRV_ENOJOB,     /* the job (or partition) does not exist */
    DRV_EEXIST,     /* the job already exists */
    DRV_EPAUSED,    /* the job is paused */
    DRV_ECANCELLED, /* the job is cancelled */
    DRV_ECURSOR,    /* a feed lost its race: the partition cursor moved */
    DRV_ETOOBIG,    /* an item or buffer is over its cap */
    DRV_ELOCKED,    /* another coordinator holds the job's lock */
    DRV_EFULL,      /* Redis refused a write for now (OOM, MISCONF, LOADING, BUSY): treat it as
                     * an outage on a live connection, back off and try again */
    DRV_ECORRUPT,   /* state in Redis is not what drover wrote (a wrong type, a field that is
                     * not a number, bad JSON); the text names the key and field */
} drv_err;

const char *drv_strerror(drv_err e);

#endif
