// The replication core without Raft, for the command and snapshot targets
// and the corpus generator.
//
// FsmNode is a follower: a replicated VFS (test::LoopbackHooks with writes
// not allowed) and the FSM libraft would call on it, starting from the
// small database of base_images(). SourceNode is a leader whose writes go
// through the real capture path and apply to itself (LoopbackHooks), for
// making valid commands and snapshots.
//
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fsm.h"
#include "support/loopback_hooks.h"
#include "vfs.h"

namespace sqraft::fuzz {

// The page size of FsmNode and SourceNode VFSes: a valid one (a node's
// Options::page_size) smaller than the default, so that inputs stay small and
// mutations land on structure more often than on page bytes.
inline constexpr uint32_t kPageSize = 1024;

// The database every FsmNode starts with: "app", a table with an index and
// a few dozen rows (one with overflow pages), its WAL not checkpointed.
// Made once, deterministically, by a SourceNode running kBaseSql.
const std::vector<DbImage>& base_images();
extern const char* const kBaseSql;

class FsmNode {
 public:
  FsmNode();  // restores base_images() (dies if that fails)
  ~FsmNode();
  FsmNode(const FsmNode&) = delete;
  FsmNode& operator=(const FsmNode&) = delete;

  Vfs& vfs() { return *vfs_; }
  // libraft's apply of one log entry; returns what the FSM returned.
  int apply(std::span<const uint8_t> entry);
  // libraft's restore of a snapshot, handed over in a raft_malloc buffer as
  // libraft does; returns what the FSM returned.
  int restore(std::span<const uint8_t> snapshot);
  // Every database's tracked hash matches its content, and SQLite reads it
  // (the schema, a quick_check) without crashing. Dies otherwise.
  void check();

 private:
  class Observer final : public FsmObserver {
   public:
    bool is_own(uint64_t) override { return false; }  // nobody waits here
    void applied(uint64_t, const Status&) override {}
    void diverged(const Status&) override {}
    void committed(const std::string&) override {}
    void restored() override {}
  };
  test::LoopbackHooks hooks_;
  Observer observer_;
  std::unique_ptr<Vfs> vfs_;
  std::unique_ptr<Fsm> fsm_;
};

class SourceNode {
 public:
  // Transactions whose frames pass `spill_threshold_bytes` are streamed in
  // pieces.
  explicit SourceNode(size_t spill_threshold_bytes = size_t{8} << 20);
  ~SourceNode();
  SourceNode(const SourceNode&) = delete;
  SourceNode& operator=(const SourceNode&) = delete;

  Vfs& vfs() { return *vfs_; }
  test::LoopbackHooks& hooks() { return hooks_; }
  // Runs `sql` on `db` (created if missing) through the replicated write
  // path; dies on error.
  void exec(const std::string& db, const std::string& sql);

 private:
  test::LoopbackHooks hooks_;
  std::unique_ptr<Vfs> vfs_;
};

// The command target's input: entries, each a u32 little-endian length and
// that many bytes (the last one takes what is left if its length runs past
// the end). At most kMaxEntries.
inline constexpr size_t kMaxEntries = 64;
std::vector<std::span<const uint8_t>> split_entries(const uint8_t* data, size_t size);
std::string join_entries(const std::vector<std::string>& entries);

}  // namespace sqraft::fuzz
