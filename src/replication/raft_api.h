// libraft's headers do not declare C linkage themselves; include them here.
#pragma once

extern "C" {
#include <raft.h>
#include <raft/uv.h>
}
