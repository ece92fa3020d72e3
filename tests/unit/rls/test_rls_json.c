/* SPDX-License-Identifier: MIT */
/*
 * test_rls_json.c - the /json body and reply (src/rls/rls_json.c): both
 * field spellings of the proto3 JSON mapping, 64-bit integers as strings,
 * every type error and bound refused with its code, and the reply in
 * upstream's shape (lowerCamel, enum names, defaults omitted, Durations).
 */
#include <string.h>

#include "rls/rls_json.h"
#include "test.h"

static int parse(const char *body, sluice__rls_json_req *r, const char **code)
{
    char why[160];
    return sluice__rls_json_parse(body, strlen(body), r, code, why, sizeof(why));
}

static void test_parse_good(void)
{
    sluice__rls_json_req r;
    const char *code = NULL;
    ASSERT_EQ(parse("{\"domain\":\"d\",\"hits_addend\":3,\"descriptors\":["
                    "{\"entries\":[{\"key\":\"a\",\"value\":\"1\"},{\"key\":\"b\"}]},"
                    "{\"entries\":[{\"key\":\"c\",\"value\":\"\"}],\"hitsAddend\":\"0\","
                    "\"limit\":{\"requestsPerUnit\":7,\"unit\":\"WEEK\"}},"
                    "{\"entries\":[{\"key\":\"e\",\"value\":\"x\"}],\"hits_addend\":5,"
                    "\"limit\":{\"requests_per_unit\":\"9\",\"unit\":2}}]}",
                    &r, &code),
              0);
    ASSERT_EQ(r.req.domain_len, 1);
    ASSERT_EQ(r.req.hits_addend, 3);
    ASSERT_EQ(r.req.ndescriptors, 3);
    const sluice__rls_descriptor *d = r.req.descriptors;
    ASSERT_EQ(d[0].nentries, 2);
    ASSERT_EQ(d[0].entries[1].value_len, 0);
    ASSERT(!d[0].has_hits_addend && !d[0].has_limit);
    ASSERT(d[1].has_hits_addend);
    ASSERT_EQ(d[1].hits_addend, 0);
    ASSERT(d[1].has_limit);
    ASSERT_EQ(d[1].limit_requests_per_unit, 7);
    ASSERT_EQ(d[1].limit_unit, SLUICE_RLS_WEEK);
    ASSERT_EQ(d[2].hits_addend, 5);
    ASSERT_EQ(d[2].limit_requests_per_unit, 9);
    ASSERT_EQ(d[2].limit_unit, SLUICE_RLS_MINUTE);
    sluice__rls_json_req_free(&r);
}

static void test_parse_bad(void)
{
    static const struct { const char *body, *code; } bad[] = {
        {"", "malformed_json"},
        {"{", "malformed_json"},
        {"{\"domain\":\"d\",\"domain\":\"e\",\"descriptors\":[]}", "malformed_json"},
        {"null", "bad_type"},
        {"\"x\"", "bad_type"},
        {"{\"domain\":[],\"descriptors\":[]}", "bad_type"},
        {"{\"domain\":\"\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}]}", "bad_request"},
        {"{\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}]}", "bad_request"},
        {"{\"domain\":\"d\"}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":5}", "bad_type"},
        {"{\"domain\":\"d\",\"descriptors\":[5]}", "bad_type"},
        {"{\"domain\":\"d\",\"descriptors\":[{}]}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[5]}]}", "bad_type"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"value\":\"v\"}]}]}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"\"}]}]}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":true}]}]}", "bad_type"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\",\"value\":1}]}]}",
         "bad_type"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\",\"x\":1}]}]}",
         "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}],\"x\":1}",
         "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}],\"hitsAddend\":-1}",
         "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}],\"hitsAddend\":1.5}",
         "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}],"
         "\"hitsAddend\":\"1e3\"}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}],"
         "\"hitsAddend\":1000000001}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}]}],\"hitsAddend\":1,"
         "\"hits_addend\":1}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}],"
         "\"limit\":{\"unit\":\"MINUTE\",\"requestsPerUnit\":4294967296}}]}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}],"
         "\"limit\":{\"requestsPerUnit\":1}}]}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}],"
         "\"limit\":{\"requestsPerUnit\":1,\"unit\":\"UNKNOWN\"}}]}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}],"
         "\"limit\":{\"requestsPerUnit\":1,\"unit\":8}}]}", "bad_request"},
        {"{\"domain\":\"d\",\"descriptors\":[{\"entries\":[{\"key\":\"a\"}],\"limit\":3}]}",
         "bad_type"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sluice__rls_json_req r;
        const char *code = NULL;
        char why[160] = "";
        int rc = sluice__rls_json_parse(bad[i].body, strlen(bad[i].body), &r, &code, why,
                                        sizeof(why));
        if (rc != -1 || !code || strcmp(code, bad[i].code) != 0)
            test_fail(__FILE__, __LINE__, "%s: rc %d code %s (%s), want %s", bad[i].body, rc,
                      code ? code : "-", why, bad[i].code);
        ASSERT(why[0] != '\0');
        sluice__rls_json_req_free(&r);
    }
    /* bounds: 65 descriptors, 33 entries, a 64 KiB + 1 body */
    static char big[80000];
    size_t off = (size_t)snprintf(big, sizeof(big), "{\"domain\":\"d\",\"descriptors\":[");
    for (int i = 0; i < 65; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off, "%s{\"entries\":[{\"key\":\"a\"}]}",
                                i ? "," : "");
    snprintf(big + off, sizeof(big) - off, "]}");
    sluice__rls_json_req r;
    const char *code = NULL;
    ASSERT_EQ(parse(big, &r, &code), -1);
    ASSERT_STREQ(code, "bad_request");
    sluice__rls_json_req_free(&r);
    off = (size_t)snprintf(big, sizeof(big), "{\"domain\":\"d\",\"descriptors\":[{\"entries\":[");
    for (int i = 0; i < 33; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off, "%s{\"key\":\"a\"}", i ? "," : "");
    snprintf(big + off, sizeof(big) - off, "]}]}");
    ASSERT_EQ(parse(big, &r, &code), -1);
    ASSERT_STREQ(code, "bad_request");
    sluice__rls_json_req_free(&r);
    memset(big, ' ', SLUICE_RLS_JSON_MAX + 1);
    char why[160];
    ASSERT_EQ(sluice__rls_json_parse(big, SLUICE_RLS_JSON_MAX + 1, &r, &code, why, sizeof(why)),
              -1);
    ASSERT_STREQ(code, "body_too_large");
}

static void test_reply(void)
{
    static sluice__rls_reply r;
    memset(&r, 0, sizeof(r));
    r.overall_code = SLUICE_RLS_OVER_LIMIT;
    r.nstatuses = 3;
    r.statuses[0] = (sluice__rls_status){.code = SLUICE_RLS_OVER_LIMIT, .has_limit = true,
                                         .requests_per_unit = 1, .unit = SLUICE_RLS_MINUTE,
                                         .duration_until_reset_ms = 59000};
    r.statuses[1] = (sluice__rls_status){.code = SLUICE_RLS_OK, .has_limit = true,
                                         .requests_per_unit = 2, .unit = SLUICE_RLS_YEAR,
                                         .limit_name = "n", .limit_remaining = 1,
                                         .duration_until_reset_ms = 1500};
    r.statuses[2] = (sluice__rls_status){.code = SLUICE_RLS_OK};
    json_t *h = json_pack("[{s:s, s:s}]", "key", "X-RateLimit-Limit", "value", "1");
    json_t *j = sluice__rls_json_reply(&r, h);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_STREQ(s, "{\"overallCode\":\"OVER_LIMIT\",\"responseHeadersToAdd\":[{\"key\":"
                    "\"X-RateLimit-Limit\",\"value\":\"1\"}],\"statuses\":[{\"code\":"
                    "\"OVER_LIMIT\",\"currentLimit\":{\"requestsPerUnit\":1,\"unit\":\"MINUTE\"},"
                    "\"durationUntilReset\":\"59s\"},{\"code\":\"OK\",\"currentLimit\":{\"name\":"
                    "\"n\",\"requestsPerUnit\":2,\"unit\":\"YEAR\"},\"durationUntilReset\":"
                    "\"1.500s\",\"limitRemaining\":1},{\"code\":\"OK\"}]}");
    free(s);
    json_decref(j);
    json_decref(h);
}

int main(void)
{
    RUN(test_parse_good);
    RUN(test_parse_bad);
    RUN(test_reply);
    return test_done();
}
