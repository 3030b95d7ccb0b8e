/* The version macros (generated from Cargo.toml), billiard_version() and
 * billiard_abi_version() agree with each other. */
#include <stdio.h>
#include <string.h>

#include "util.h"

int main(void) {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", BILLIARD_VERSION_MAJOR, BILLIARD_VERSION_MINOR,
             BILLIARD_VERSION_PATCH);
    CHECK(strcmp(billiard_version(), BILLIARD_VERSION_STRING) == 0);
    CHECK(strcmp(billiard_version(), expected) == 0);
    CHECK(BILLIARD_VERSION_NUMBER ==
          BILLIARD_VERSION_MAJOR * 10000 + BILLIARD_VERSION_MINOR * 100 + BILLIARD_VERSION_PATCH);
    CHECK(billiard_abi_version() == BILLIARD_ABI_VERSION);
#if BILLIARD_VERSION_MAJOR == 0
    CHECK(BILLIARD_ABI_VERSION == BILLIARD_VERSION_MINOR * 100);
    snprintf(expected, sizeof expected, "libbilliard.so.0.%d", BILLIARD_VERSION_MINOR);
#else
    CHECK(BILLIARD_ABI_VERSION == BILLIARD_VERSION_MAJOR * 10000);
    snprintf(expected, sizeof expected, "libbilliard.so.%d", BILLIARD_VERSION_MAJOR);
#endif
    CHECK(strcmp(BILLIARD_SONAME, expected) == 0);
    printf("version: %s abi %d %s\n", billiard_version(), billiard_abi_version(), BILLIARD_SONAME);
    return 0;
}
