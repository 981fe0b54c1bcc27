/* rlimits.h - per-process limits as a second line behind the job's cgroup. */
#pragma once

#include <stdint.h>

int rl_apply(uint64_t timeout_ms, uint64_t nproc, uint64_t fsize_bytes);
