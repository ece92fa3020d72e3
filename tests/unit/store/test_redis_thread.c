/* SPDX-License-Identifier: MIT */
/*
 * test_redis_thread.c - the Redis store used from many threads at once,
 * built and run under ThreadSanitizer by `make test` (the name contains
 * "thread").  Starts its own redis-server and redis-sentinel on free
 * loopback ports (stopped at the end); prints "skipped" when they are not
 * installed.  Threads share one store: 8 on the blocking pool and 2 event
 * loops on the async path, all on one key, through redis:// and through
 * redis+sentinel:// (whose discovery thread runs alongside); the limit must
 * be admitted exactly.
 */
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/redis/redis_int.h"
#include "test.h"

extern char **environ;

static char tmpdir[] = "/tmp/sluice-redis-thread.XXXXXX";
static pid_t pids[2];
static int npids;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        test_fail(__FILE__, __LINE__, "no free port");
    close(fd);
    return ntohs(a.sin_port);
}

static bool have(const char *prog)
{
    char path[256];
    snprintf(path, sizeof(path), "/usr/bin/%s", prog);
    return access(path, X_OK) == 0;
}

static void spawn(const char *const argv[])
{
    pid_t pid;
    /* posix_spawn does not modify argv; its prototype predates const */
    ASSERT_EQ(posix_spawn(&pid, argv[0], NULL, NULL, (char *const *)argv, environ), 0);
    pids[npids++] = pid;
}

static void wait_ping(int port)
{
    for (int i = 0; i < 500; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        } else if (c) {
            redisFree(c);
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    test_fail(__FILE__, __LINE__, "nothing answers on port %d", port);
}

static void stop_all(void)
{
    for (int i = 0; i < npids; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    npids = 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void *open_store(const char *url)
{
    sluice__url u;
    sluice_error err = {0};
    ASSERT_EQ(sluice__url_parse(&u, url, &err), 0);
    sluice_store_options o = {0};
    o.timeout_ms = 5000; /* TSan is slow; this test is about races, not deadlines */
    void *impl = NULL;
    int rc = sluice__redis_ops.open(&impl, &u, &o, &err);
    sluice__url_free(&u);
    if (rc)
        test_fail(__FILE__, __LINE__, "open: %s", err.msg);
    return impl;
}

typedef struct shared {
    void *impl;
    const char *key;
    sluice_limit lim;
    int per_thread;
    atomic_int allowed, errors;
} shared;

static void *blocking_thread(void *arg)
{
    shared *s = arg;
    for (int i = 0; i < s->per_thread; i++) {
        sluice__op op = {s->key, strlen(s->key), &s->lim, 1, 1, SLUICE_NOW};
        sluice_decision d;
        sluice_error err = {0};
        if (sluice__redis_ops.decide(s->impl, &op, &d, &err) != 0)
            atomic_fetch_add(&s->errors, 1);
        else if (d.allowed)
            atomic_fetch_add(&s->allowed, 1);
    }
    return NULL;
}

typedef struct loop_arg {
    shared *s;
    struct event_base *base;
    int left, inflight;
} loop_arg;

static void async_send(loop_arg *a);

static void async_cb(int status, const sluice_decision *d, void *arg)
{
    loop_arg *a = arg;
    a->inflight--;
    if (status != 0)
        atomic_fetch_add(&a->s->errors, 1);
    else if (d->allowed)
        atomic_fetch_add(&a->s->allowed, 1);
    if (a->left > 0)
        async_send(a);
    else if (a->inflight == 0)
        event_base_loopbreak(a->base);
}

static void *conn_for(loop_arg *a);

static void async_send(loop_arg *a)
{
    a->left--;
    a->inflight++;
    sluice__op op = {a->s->key, strlen(a->s->key), &a->s->lim, 1, 1, SLUICE_NOW};
    ASSERT_EQ(sluice__redis_ops.decide_async(conn_for(a), &op, async_cb, a), 0);
}

static void *the_conn[2];
static loop_arg *the_arg[2];

static void *conn_for(loop_arg *a)
{
    return a == the_arg[0] ? the_conn[0] : the_conn[1];
}

static void *loop_thread(void *arg)
{
    loop_arg *a = arg;
    int idx = a == the_arg[0] ? 0 : 1;
    a->base = event_base_new();
    sluice_error err = {0};
    ASSERT_EQ(sluice__redis_ops.attach(a->s->impl, a->base, &the_conn[idx], &err), 0);
    for (int i = 0; i < 16 && a->left > 0; i++)
        async_send(a);
    struct timeval tv = {60, 0};
    event_base_loopexit(a->base, &tv);
    event_base_dispatch(a->base);
    sluice__redis_ops.detach(the_conn[idx]);
    event_base_free(a->base);
    return NULL;
}

static void hammer(const char *url, const char *key)
{
    shared s = {0};
    s.impl = open_store(url);
    s.key = key;
    s.lim = (sluice_limit){SLUICE_FIXED_WINDOW, 700, SLUICE_WINDOW_MAX_MS, 0};
    s.per_thread = 150;
    pthread_t th[10];
    loop_arg la[2] = {{&s, NULL, 300, 0}, {&s, NULL, 300, 0}};
    the_arg[0] = &la[0];
    the_arg[1] = &la[1];
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, blocking_thread, &s), 0);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&th[8 + i], NULL, loop_thread, &la[i]), 0);
    for (int i = 0; i < 10; i++)
        pthread_join(th[i], NULL);
    /* 8*150 + 2*300 = 1800 decisions on a limit of 700 */
    ASSERT_EQ(atomic_load(&s.errors), 0);
    ASSERT_EQ(atomic_load(&s.allowed), 700);
    sluice__redis_ops.close(s.impl);
}

static int redis_port;
static int sentinel_port;

static void test_threads_redis(void)
{
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis_port);
    hammer(url, "thread:redis");
}

static void test_threads_sentinel(void)
{
    char url[96];
    snprintf(url, sizeof(url), "redis+sentinel://127.0.0.1:1,127.0.0.1:%d/tmaster", sentinel_port);
    hammer(url, "thread:sentinel");
}

int main(void)
{
    if (!have("redis-server") || !have("redis-sentinel")) {
        printf("skipped: redis-server or redis-sentinel not installed\n");
        return test_done();
    }
    ASSERT(mkdtemp(tmpdir) != NULL);
    atexit(stop_all); /* also when an assert ends the process */
    redis_port = free_port();
    char port[16], rlog[80];
    snprintf(port, sizeof(port), "%d", redis_port);
    snprintf(rlog, sizeof(rlog), "%s/redis.log", tmpdir);
    const char *const rargv[] = {
        "/usr/bin/redis-server", "--port", port,    "--bind", "127.0.0.1", "--save", "",
        "--appendonly",          "no",     "--dir", tmpdir,   "--logfile", rlog,     NULL};
    spawn(rargv);
    wait_ping(redis_port);

    sentinel_port = free_port();
    char conf[256];
    snprintf(conf, sizeof(conf), "%s/sentinel.conf", tmpdir);
    FILE *f = fopen(conf, "w");
    ASSERT(f != NULL);
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/sentinel.log\n"
            "sentinel monitor tmaster 127.0.0.1 %d 1\n",
            sentinel_port, tmpdir, tmpdir, redis_port);
    fclose(f);
    const char *const sargv[] = {"/usr/bin/redis-sentinel", conf, NULL};
    spawn(sargv);
    wait_ping(sentinel_port);

    RUN(test_threads_redis);
    RUN(test_threads_sentinel);
    return test_done();
}
