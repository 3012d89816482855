/*
 * The floor for the process-lock figures: what the kernel costs, from C.
 *
 *   fcntl_floor pairs PATH N   time N fcntl(F_OFD_SETLK) lock+unlock pairs on one
 *                              descriptor; prints {"avgNs":..,"bestBatchNs":..}
 *   fcntl_floor serve PATH     a handoff party driven by bench/run.ts, one command a line
 *                              on stdin (see bench/handoff_child.ts for the protocol):
 *                              hold / wait / release / quit
 *
 * Built by bench/run.ts with the system cc into bench/.build/ (git-ignored).
 * Linux only (OFD locks).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct flock whole(short type) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  return fl;
}

static int64_t now_ns(int clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void must(int ok, const char *what) {
  if (!ok) {
    perror(what);
    exit(1);
  }
}

static int pairs(int fd, long n) {
  struct flock wr = whole(F_WRLCK), un = whole(F_UNLCK);
  const int batches = 20;
  long per = n / batches > 0 ? n / batches : 1;
  double best = 1e18;
  int64_t total = 0;
  for (int b = 0; b < batches; b++) {
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    for (long i = 0; i < per; i++) {
      must(fcntl(fd, F_OFD_SETLK, &wr) == 0, "fcntl lock");
      must(fcntl(fd, F_OFD_SETLK, &un) == 0, "fcntl unlock");
    }
    int64_t dt = now_ns(CLOCK_MONOTONIC) - t0;
    total += dt;
    if ((double)dt / per < best) best = (double)dt / per;
  }
  printf("{\"avgNs\":%.1f,\"bestBatchNs\":%.1f}\n", (double)total / (per * batches), best);
  return 0;
}

/* Times are nanoseconds since the epoch (CLOCK_REALTIME), the clock the Deno and
 * Python parties read too, so the coordinator can subtract them. */
static int serve(int fd) {
  struct flock wr = whole(F_WRLCK), un = whole(F_UNLCK);
  char line[64];
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "hold", 4) == 0) {
      must(fcntl(fd, F_OFD_SETLKW, &wr) == 0, "fcntl hold");
      printf("held\n");
    } else if (strncmp(line, "wait", 4) == 0) {
      printf("waiting\n");
      fflush(stdout);
      must(fcntl(fd, F_OFD_SETLKW, &wr) == 0, "fcntl wait");
      int64_t t1 = now_ns(CLOCK_REALTIME);
      must(fcntl(fd, F_OFD_SETLK, &un) == 0, "fcntl unlock");
      printf("got %lld\n", (long long)t1);
    } else if (strncmp(line, "release", 7) == 0) {
      int64_t t0 = now_ns(CLOCK_REALTIME);
      must(fcntl(fd, F_OFD_SETLK, &un) == 0, "fcntl release");
      printf("released %lld\n", (long long)t0);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s pairs PATH N | serve PATH\n", argv[0]);
    return 2;
  }
  int fd = open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  must(fd >= 0, "open");
  if (strcmp(argv[1], "pairs") == 0 && argc > 3) return pairs(fd, atol(argv[3]));
  if (strcmp(argv[1], "serve") == 0) return serve(fd);
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
