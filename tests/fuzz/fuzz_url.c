/* libFuzzer: Redis URLs and DROVER_REDIS_URL. Parse or refuse with a reason; an accepted URL's
 * description never contains its password. */
#include "url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char url[2048];
    if (size >= sizeof url || memchr(data, '\0', size)) return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    drv_redis_cfg c;
    char why[512] = "";
    if (drv_url_parse(url, &c, why, sizeof why) != DRV_OK) {
        if (!why[0]) abort();
        return 0;
    }
    char desc[1024];
    drv_url_describe(&c, desc, sizeof desc);
    /* The description is the same whatever the password: it never shows it. */
    drv_redis_cfg nopw = c;
    nopw.password[0] = '\0';
    char desc2[1024];
    drv_url_describe(&nopw, desc2, sizeof desc2);
    if (strcmp(desc, desc2) != 0) abort();
    return 0;
}
