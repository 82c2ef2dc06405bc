// fuzz-command-apply: Raft log entries, decoded as commands (Open, Frames,
// Undo, Checkpoint) and applied by the FSM to a follower's VFS that holds a
// small database, so malformed and out-of-order commands meet real state.
//
// Input: up to 64 entries, each a u32 little-endian length and its bytes
// (fsm_node.h). A decode or apply error is fine (the FSM skips the entry, or
// halts on a divergence); a crash, leak, sanitizer report or hang is a bug.
// Afterwards every database's tracked hash must match its content and
// SQLite must read it.
#include <cstddef>
#include <cstdint>

#include "fsm_node.h"
#include "fuzz_node.h"

using namespace sqraft;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  (void)fuzz::base_images();  // made once, outside the inputs' time
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  fuzz::FsmNode node;
  for (std::span<const uint8_t> entry : fuzz::split_entries(data, size)) (void)node.apply(entry);
  node.check();
  return 0;
}
