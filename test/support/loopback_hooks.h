// LoopbackHooks: replication without Raft, for tests and benchmarks.
//
// A commit goes through the real path (capture, encode, decode, apply) but is
// applied synchronously on the writer's thread: to the writer's own VFS as
// its own transaction, then to every follower VFS. Failures can be injected.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "command.h"
#include "vfs.h"

namespace sqraft::test {

class LoopbackHooks : public ReplicationHooks {
 public:
  void set_leader(Vfs* vfs) { leader_ = vfs; }
  void add_follower(Vfs* vfs) { followers_.push_back(vfs); }

  // Called before each replicate(); returning an error fails it.
  std::function<Status(const FramesBatch&)> before_replicate;
  std::atomic<bool> allow_writes{true};
  std::atomic<int> commits{0};
  std::atomic<int> pieces{0};
  std::atomic<int> undos{0};
  Status last_follower_error;

  bool writes_allowed() override { return allow_writes; }
  std::string leader_address() override {
    std::lock_guard lk(leader_mu_);
    return leader_address_;
  }
  void set_leader_address(std::string a) {
    std::lock_guard lk(leader_mu_);
    leader_address_ = std::move(a);
  }

  // The leader that is not ready yet (allow_writes off with leading on).
  std::atomic<bool> leading_flag{false};
  bool leading() override { return leading_flag; }
  // Each replicate() that succeeded counts as one applied log entry.
  uint64_t applied_index() override { return applied_.load(); }
  Status wait_applied(uint64_t index, std::chrono::milliseconds) override {
    return index <= applied_.load() ? Status::Ok() : Status::Busy("not applied yet");
  }
  // Everything is applied synchronously, so a barrier only has to be counted.
  std::atomic<int> read_barriers{0};
  Status read_barrier(std::chrono::milliseconds) override {
    if (!allow_writes) return Status::NotLeader();
    read_barriers++;
    return Status::Ok();
  }

  Status replicate(const FramesBatch& batch) override {
    if (before_replicate) {
      Status s = before_replicate(batch);
      if (!s.ok()) return s;
    }
    Command cmd;
    cmd.body = batch;
    std::string bytes = encode_command(cmd);
    Result<Command> mine = decode_command(bytes.data(), bytes.size());
    if (!mine.ok()) return mine.status();
    Status s = leader_->apply_frames(std::get<FramesBatch>(std::move(mine.value()).body), true);
    if (!s.ok()) return s;
    for (Vfs* f : followers_) {
      Result<Command> theirs = decode_command(bytes.data(), bytes.size());
      Status fs = f->apply_frames(std::get<FramesBatch>(std::move(theirs.value()).body), false);
      if (!fs.ok()) last_follower_error = fs;
    }
    (batch.commit ? commits : pieces)++;
    applied_++;
    return Status::Ok();
  }

  Status create_database(const std::string& name, const PagePtr& page1) override {
    Status s = leader_->apply_open(name, page1);
    for (Vfs* f : followers_) (void)f->apply_open(name, page1);
    return s;
  }

  void undo(const std::string& db, uint64_t txn_id) override {
    undos++;
    (void)leader_->apply_undo(db, txn_id);
    for (Vfs* f : followers_) (void)f->apply_undo(db, txn_id);
  }

  void wake() override {
    leader_->drain();
    for (Vfs* f : followers_) f->drain();
  }

 private:
  Vfs* leader_ = nullptr;
  std::vector<Vfs*> followers_;
  std::atomic<uint64_t> applied_{0};
  std::mutex leader_mu_;
  std::string leader_address_;
};

}  // namespace sqraft::test
