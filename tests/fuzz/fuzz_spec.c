/* libFuzzer: job specs. Whatever the bytes, drv_spec_parse either refuses them with a message
 * or accepts them; an accepted spec survives its own JSON round trip unchanged (it is stored in
 * Redis as that JSON and read back by every worker and coordinator). */
#include "spec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static drv_spec a, b; /* large: not on the stack */
    char why[512];
    why[0] = '\0';
    if (drv_spec_parse((const char *)data, size, &a, why, sizeof why) != DRV_OK) {
        if (!why[0]) abort(); /* a refusal always says why */
        return 0;
    }
    char *json = drv_spec_to_json(&a);
    if (!json) abort();
    if (drv_spec_parse(json, strlen(json), &b, why, sizeof why) != DRV_OK) {
        fprintf(stderr, "accepted spec does not read back: %s\n%s\n", why, json);
        abort();
    }
    char *again = drv_spec_to_json(&b);
    if (!again || strcmp(json, again) != 0) {
        fprintf(stderr, "round trip changed the spec:\n%s\n%s\n", json, again ? again : "");
        abort();
    }
    free(json);
    free(again);
    return 0;
}
