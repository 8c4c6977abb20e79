/* unit.h - the shared CUnit runner: each test program lists its suites and calls
 * unit_run(), whose return value is the process exit status (0 = all passed). */
#ifndef APT_DHT_UNIT_H
#define APT_DHT_UNIT_H
#include <CUnit/Basic.h>

struct unit_case {
    const char *name;
    void (*fn)(void);
};

/* Runs one suite of cases; returns the exit status of the program. */
static inline int unit_run(const char *suite, const struct unit_case *cases)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    for (; s && cases->name; cases++)
        CU_add_test(s, cases->name, cases->fn);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return (failed || ran == 0) ? 1 : 0;
}
#endif
