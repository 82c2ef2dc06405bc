#include "proposer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "boundary.h"

namespace sqraft {

namespace {

Status status_from_raft(int rv, const char* what) {
  switch (rv) {
    case RAFT_NOTLEADER:
      return Status::NotLeader();
    case RAFT_LEADERSHIPLOST:
      return Status::LeadershipLost();
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
      return Status::LeadershipLost("leadership lost: node is shutting down");
    case RAFT_NOMEM:
      return Status::NoMemory(std::string(what) + ": out of memory");
    case RAFT_TOOBIG:
      return Status::Error(SQLITE_TOOBIG, std::string(what) + ": entry too big");
    default:
      return Status::IoError(std::string(what) + ": " + raft_strerror(rv));
  }
}

struct BarrierRequest {
  struct raft_barrier req;
  Proposer* self;
  raft_term term;
  uint64_t round = 0;  // a read barrier's round
};

}  // namespace

void Proposer::Waiter::complete(const Status& s) {
  std::lock_guard lk(mu);
  if (done) return;
  status = s;
  done = true;
  cv.notify_all();
}

Status Proposer::Waiter::wait() {
  std::unique_lock lk(mu);
  for (;;) {
    if (done) return status;
    if (limbo && !owned && std::chrono::steady_clock::now() >= limbo_deadline) {
      abandoned = true;
      return Status::Error(kErrOutcomeUnknown,
                           "leadership was lost during the commit and the node could not learn in time whether the "
                           "cluster kept the transaction: it may or may not have committed");
    }
    if (limbo && !owned) {
      cv.wait_until(lk, limbo_deadline);
    } else {
      cv.wait(lk);
    }
  }
}

void Proposer::Waiter::enter_limbo(std::chrono::steady_clock::time_point deadline) {
  std::lock_guard lk(mu);
  limbo = true;
  limbo_deadline = deadline;
  cv.notify_all();
}

bool Proposer::Waiter::claim() {
  std::lock_guard lk(mu);
  if (abandoned) return false;
  owned = true;
  return true;
}

Status Proposer::Waiter::wait_for(std::chrono::milliseconds timeout, const char* what) {
  std::unique_lock lk(mu);
  if (!cv.wait_for(lk, timeout, [&] { return done; })) {
    return Status::Busy(std::string(what) + ": no answer within " + std::to_string(timeout.count()) + " ms");
  }
  return status;
}

Proposer::Proposer(Options options) : options_(std::move(options)) {
  std::random_device rd;
  next_proposal_id_ = (uint64_t(rd()) << 32 | rd()) & ~(uint64_t{0xffff} << 48);
  if (next_proposal_id_ == 0) next_proposal_id_ = 1;
}

Result<std::unique_ptr<Proposer>> Proposer::create(Options options) {
  std::unique_ptr<Proposer> self(new Proposer(options));
  Vfs::Options vo;
  vo.name = options.vfs_name;
  vo.page_size = options.page_size;
  vo.spill_threshold_bytes = options.spill_threshold_bytes;
  vo.dir = options.db_dir;
  Result<std::unique_ptr<Vfs>> vfs = Vfs::create(vo, self.get());
  if (!vfs.ok()) return vfs.status();
  self->vfs_ = std::move(vfs).value();
  self->fsm_ = std::make_unique<Fsm>(*self->vfs_, *self);
  self->fsm_->set_metrics(options.metrics);
  return self;
}

Proposer::~Proposer() {
  // Writers must be gone; fail anything still registered so nobody waits forever.
  for (auto& [id, p] : inflight_) {
    if (p->waiter) p->waiter->complete(Status::LeadershipLost("node destroyed"));
  }
  for (auto& [id, l] : limbo_) l.waiter->complete(Status::Error(kErrOutcomeUnknown, "node destroyed"));
  // libraft 0.15 closes without calling back a barrier that never
  // committed (a leader that lost its quorum); Raft is closed by now.
  for (void* b : outstanding_barriers_) delete static_cast<BarrierRequest*>(b);
}

void Proposer::attach(struct raft* raft, std::function<void()> wake_loop) {
  raft_ = raft;
  fsm_->set_raft(raft);
  wake_loop_ = std::move(wake_loop);
  loop_thread_ = std::this_thread::get_id();
}

Status Proposer::divergence() const {
  if (!diverged_.load()) return Status::Ok();
  return divergence_;
}

bool Proposer::busy() const {
  std::lock_guard lk(post_mu_);
  return !posted_.empty() || !inflight_.empty() || vfs_work_.load();
}

bool Proposer::post(std::function<void()> fn) {
  {
    std::lock_guard lk(post_mu_);
    // Once shutdown() has drained the queue nothing would ever run this.
    if (stopping_) return false;
    posted_.push_back(std::move(fn));
  }
  if (wake_loop_) wake_loop_();
  return true;
}

void Proposer::wake() {
  vfs_work_ = true;
  if (wake_loop_) wake_loop_();
}

void Proposer::poll() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(post_mu_);
    fns.swap(posted_);
  }
  for (auto& fn : fns) fn();
  if (vfs_work_.exchange(false)) vfs_->drain();
  update_leadership();
  track_applied();
}

void Proposer::track_applied() {
  if (raft_ == nullptr) return;
  const uint64_t a = raft_last_applied(raft_);
  for (auto it = limbo_.begin(); it != limbo_.end();) {
    if (it->second.index > a) {
      ++it;
      continue;
    }
    // Another entry holds its index: it did not commit, and never will.
    it->second.waiter->complete(
        Status::LeadershipLost("leadership lost before the transaction committed: it was rolled back"));
    it = limbo_.erase(it);
  }
  if (a == applied_index_.load()) return;
  {
    std::lock_guard lk(applied_mu_);
    applied_index_ = a;
  }
  applied_cv_.notify_all();
}

void Proposer::shutdown() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(post_mu_);
    stopping_ = true;
    fns.swap(posted_);
  }
  writes_allowed_ = false;
  for (auto& fn : fns) fn();  // submit() fails each one now
  for (auto& [id, p] : inflight_) {
    if (p->waiter) p->waiter->complete(Status::LeadershipLost("leadership lost: node is shutting down"));
  }
  for (auto& [id, l] : limbo_) {
    l.waiter->complete(Status::Error(kErrOutcomeUnknown, "the node stopped before it learned whether the transaction "
                                                          "committed (leadership was lost during the commit)"));
  }
  limbo_.clear();
  const Status gone = Status::NotLeader("node is shutting down");
  for (auto& w : read_waiting_) w->complete(gone);
  for (auto& w : read_inflight_) w->complete(gone);
  read_waiting_.clear();
  read_inflight_.clear();
  {
    std::lock_guard lk(applied_mu_);  // wait_applied() sees stopping_
  }
  applied_cv_.notify_all();
}

// ---- proposals -------------------------------------------------------------

std::unique_ptr<Proposer::Proposal> Proposer::make_proposal(Command& cmd, std::string* encoded) {
  auto p = std::make_unique<Proposal>();
  p->self = this;
  p->id = next_proposal_id_.fetch_add(1);
  cmd.proposal_id = p->id;
  *encoded = encode_command(cmd);
  return p;
}

Status Proposer::propose_and_wait(Command cmd) {
  if (on_loop_thread()) return Status::Internal("a write cannot wait for Raft on the loop thread");
  if (stopping_ || diverged_) return Status::LeadershipLost("leadership lost: node is shutting down");
  std::string encoded;
  std::unique_ptr<Proposal> p = make_proposal(cmd, &encoded);
  auto waiter = std::make_shared<Waiter>();
  p->waiter = waiter;
  if (!post([this, p = p.release(), e = std::move(encoded)]() mutable {
        submit(std::unique_ptr<Proposal>(p), std::move(e));
      })) {
    return Status::LeadershipLost("leadership lost: node is shutting down");
  }
  return waiter->wait();
}

void Proposer::propose_async(Command cmd) {
  std::string encoded;
  std::unique_ptr<Proposal> p = make_proposal(cmd, &encoded);
  if (const auto* c = std::get_if<CheckpointCommand>(&cmd.body)) p->checkpoint_db = c->db;
  if (raft_ != nullptr && on_loop_thread()) {
    submit(std::move(p), std::move(encoded));
    return;
  }
  Proposal* raw = p.release();
  if (!post([this, raw, e = std::move(encoded)]() mutable { submit(std::unique_ptr<Proposal>(raw), std::move(e)); })) {
    delete raw;
  }
}

void Proposer::submit(std::unique_ptr<Proposal> p, std::string encoded) {
  auto fail = [&](const Status& s) {
    if (p->waiter) p->waiter->complete(s);
    if (!p->checkpoint_db.empty()) checkpoints_inflight_.erase(p->checkpoint_db);
  };
  if (stopping_ || diverged_ || raft_ == nullptr) {
    fail(Status::LeadershipLost("leadership lost: node is shutting down"));
    return;
  }
  if (raft_state(raft_) != RAFT_LEADER) {
    fail(Status::NotLeader());
    return;
  }
  struct raft_buffer buf;
  buf.len = encoded.size();
  buf.base = raft_malloc(buf.len);
  if (buf.base == nullptr) {
    fail(Status::NoMemory("propose: out of memory"));
    return;
  }
  std::memcpy(buf.base, encoded.data(), buf.len);
  p->req.data = p.get();
  int rv = raft_apply(raft_, &p->req, &buf, 1, apply_cb);
  if (rv == 0 && options_.metrics) {
    options_.metrics->proposed_entries++;
    options_.metrics->proposed_bytes += encoded.size();
  }
  if (rv != 0) {
    raft_free(buf.base);
    fail(status_from_raft(rv, "propose"));
    return;
  }
  inflight_[p->id] = p.get();
  spdlog::trace("proposal {:x} submitted at index {}", p->id, p->req.index);
  p.release();  // freed in apply_cb
}

void Proposer::apply_cb(struct raft_apply* req, int status, void* /*result*/) {
  std::unique_ptr<Proposal> p(static_cast<Proposal*>(req->data));
  at_c_boundary("proposal completion", [&] {
    Proposer* self = p->self;
    spdlog::trace("proposal {:x} callback status {}", p->id, status);
    self->inflight_.erase(p->id);
    if (!p->checkpoint_db.empty()) self->checkpoints_inflight_.erase(p->checkpoint_db);
    if (p->waiter && status != 0 && p->req.index != 0 && !self->stopping_) {
      // The entry is in the log and was sent to the followers: it may still
      // commit — under the next leader after leadership was lost, or through
      // the followers when this node's own append failed (a full disk: the
      // followers stored it, a majority without this node). Rolling the
      // transaction back here would leave this node without an entry the
      // others apply (they then stop on a checksum mismatch). Wait until
      // this node has applied its index (or the writer's deadline).
      spdlog::debug("proposal {:x} at index {}: {}, waiting for the outcome", p->id, p->req.index,
                    raft_strerror(status));
      p->waiter->enter_limbo(std::chrono::steady_clock::now() +
                             std::chrono::milliseconds(self->options_.commit_outcome_timeout_ms));
      self->limbo_[p->id] = Limbo{p->req.index, p->waiter};
      self->track_applied();
      return;
    }
    if (p->waiter) {
      // Success was reported by applied(); here only failures remain.
      p->waiter->complete(status == 0 ? Status::Internal("proposal applied without a result")
                                      : status_from_raft(status, "replicate"));
    }
  });
}

// ---- ReplicationHooks ----------------------------------------------------------

Status Proposer::replicate(const FramesBatch& batch) {
  Command cmd;
  cmd.body = batch;
  if (batch.commit && corrupt_next_checksum_.exchange(false)) {
    std::get<FramesBatch>(cmd.body).checksum ^= 0x5a5a5a5a5a5a5a5aULL;
  }
  if (!batch.commit || options_.metrics == nullptr) return propose_and_wait(std::move(cmd));
  const auto start = std::chrono::steady_clock::now();
  Status s = propose_and_wait(std::move(cmd));
  if (s.ok()) {
    options_.metrics->commit_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return s;
}

Status Proposer::create_database(const std::string& name, const PagePtr& page1) {
  Command cmd;
  cmd.body = OpenCommand{name, options_.page_size, page1};
  return propose_and_wait(std::move(cmd));
}

void Proposer::undo(const std::string& db, uint64_t txn_id) {
  Command cmd;
  cmd.body = UndoCommand{db, txn_id};
  propose_async(std::move(cmd));
}

Status Proposer::wait_applied(uint64_t index, std::chrono::milliseconds timeout) {
  std::unique_lock lk(applied_mu_);
  const bool reached = applied_cv_.wait_for(lk, timeout, [&] { return applied_index_.load() >= index || stopping_; });
  if (applied_index_.load() >= index) return Status::Ok();
  if (!reached) {
    return Status::Busy("applied index " + std::to_string(applied_index_.load()) + " has not reached " +
                        std::to_string(index) + " within " + std::to_string(timeout.count()) + " ms");
  }
  return Status::NotLeader("node is shutting down");
}

Status Proposer::read_barrier(std::chrono::milliseconds timeout) {
  if (on_loop_thread()) return Status::Internal("a read barrier cannot wait on the loop thread");
  auto waiter = std::make_shared<Waiter>();
  if (!post([this, waiter] {
        if (stopping_ || diverged_ || raft_ == nullptr || raft_state(raft_) != RAFT_LEADER) {
          waiter->complete(Status::NotLeader("linearizable reads are served by the leader"));
          return;
        }
        read_waiting_.push_back(waiter);
        if (!read_barrier_inflight_) start_read_barrier();
      })) {
    return Status::NotLeader("node is shutting down");
  }
  return waiter->wait_for(timeout, "read barrier");
}

uint64_t Proposer::request_confirmation() {
  if (stopping_ || diverged_ || raft_ == nullptr || raft_state(raft_) != RAFT_LEADER) return 0;
  confirm_wanted_ = true;
  const uint64_t ticket = barrier_round_ + 1;  // the next round to start
  if (!read_barrier_inflight_) start_read_barrier();
  return ticket;
}

Proposer::Confirmation Proposer::confirmation(uint64_t ticket) const {
  if (confirmed_round_ >= ticket) return Confirmation::kConfirmed;
  if (failed_round_ >= ticket) return Confirmation::kFailed;
  return Confirmation::kPending;
}

void Proposer::start_read_barrier() {
  if (read_waiting_.empty() && !confirm_wanted_) return;
  auto* b = new BarrierRequest{{}, this, raft_->current_term, ++barrier_round_};
  b->req.data = b;
  confirm_wanted_ = false;
  if (int rv = raft_barrier(raft_, &b->req, read_barrier_cb); rv != 0) {
    delete b;
    failed_round_ = barrier_round_;
    const Status s = status_from_raft(rv, "read barrier");
    for (auto& w : read_waiting_) w->complete(s);
    read_waiting_.clear();
    return;
  }
  outstanding_barriers_.insert(b);
  read_inflight_.swap(read_waiting_);
  read_waiting_.clear();
  read_barrier_inflight_ = true;
}

void Proposer::read_barrier_cb(struct raft_barrier* req, int status) {
  std::unique_ptr<BarrierRequest> b(static_cast<BarrierRequest*>(req->data));
  b->self->outstanding_barriers_.erase(b.get());
  at_c_boundary("read barrier completion", [&] {
    Proposer* self = b->self;
    self->read_barrier_inflight_ = false;
    // The barrier is applied: so is everything committed before it.
    self->track_applied();
    if (status == 0) {
      self->confirmed_round_ = std::max(self->confirmed_round_, b->round);
    } else {
      self->failed_round_ = std::max(self->failed_round_, b->round);
    }
    const Status s = status == 0 ? Status::Ok() : status_from_raft(status, "read barrier");
    for (auto& w : self->read_inflight_) w->complete(s);
    self->read_inflight_.clear();
    if (status != 0) {
      // Leadership was lost (libraft fails the barrier while it steps down,
      // when no new request may be made): those waiting for the next round
      // get the same answer.
      for (auto& w : self->read_waiting_) w->complete(s);
      self->read_waiting_.clear();
      if (self->confirm_wanted_) self->failed_round_ = ++self->barrier_round_;  // that round never starts
      self->confirm_wanted_ = false;
      return;
    }
    if (!self->stopping_) self->start_read_barrier();
  });
}

// ---- FsmObserver ---------------------------------------------------------------

bool Proposer::is_own(uint64_t proposal_id) {
  if (auto it = inflight_.find(proposal_id); it != inflight_.end()) {
    return it->second->waiter != nullptr && it->second->waiter->claim();
  }
  auto it = limbo_.find(proposal_id);
  return it != limbo_.end() && it->second.waiter->claim();
}

void Proposer::applied(uint64_t proposal_id, const Status& status) {
  auto it = inflight_.find(proposal_id);
  spdlog::trace("proposal {:x} applied ({}), own={}", proposal_id, status.to_string(), it != inflight_.end());
  if (it != inflight_.end()) {
    if (it->second->waiter) it->second->waiter->complete(status);
    return;
  }
  if (auto l = limbo_.find(proposal_id); l != limbo_.end()) {
    // Committed after all, under the next leader.
    spdlog::debug("proposal {:x} committed after leadership was lost", proposal_id);
    l->second.waiter->complete(status);
    limbo_.erase(l);
  }
}

void Proposer::restored() {
  // The entries up to the snapshot were not applied one by one: whether a
  // proposal in limbo is among them cannot be told.
  for (auto& [id, l] : limbo_) {
    l.waiter->complete(Status::Error(kErrOutcomeUnknown,
                                     "leadership was lost during the commit and a snapshot replaced the node's "
                                     "state: the transaction may or may not have committed"));
  }
  limbo_.clear();
}

void Proposer::diverged(const Status& status) {
  divergence_ = status;
  diverged_ = true;
  writes_allowed_ = false;
  // A node that cannot write its database files stops; what it proposed
  // may still commit on the others.
  const Status told = status.code() == kErrStorageWrite
                          ? Status::Error(kErrOutcomeUnknown, "commit outcome unknown: " + status.message())
                          : status;
  for (auto& [id, p] : inflight_) {
    if (p->waiter) p->waiter->complete(told);
  }
  if (on_fatal_) on_fatal_(status);
}

void Proposer::committed(const std::string& db) {
  if (!writes_allowed_) return;
  if (vfs_->wal_frames(db) < options_.checkpoint_threshold_frames) return;
  checkpoint(db);
}

void Proposer::checkpoint(const std::string& db) {
  if (checkpoints_inflight_.count(db)) return;
  checkpoints_inflight_.insert(db);
  Command cmd;
  cmd.body = CheckpointCommand{db};
  propose_async(std::move(cmd));
}

// ---- leadership ------------------------------------------------------------------

std::string Proposer::leader_address() {
  std::lock_guard lk(leader_mu_);
  return leader_address_;
}

void Proposer::track_leader() {
  raft_id id = 0;
  const char* address = nullptr;
  if (raft_ != nullptr && !stopping_) raft_leader(raft_, &id, &address);
  if (id != 0 && raft_state(raft_) == RAFT_FOLLOWER) {
    // Not heard from for a few heartbeats: the leader may be gone and an
    // election near. Writers then wait in their busy handler rather than
    // be sent to a leader that may no longer exist.
    const raft_time now = raft_->io->time(raft_->io);
    if (now - raft_->election_timer_start > 3 * raft_time(raft_->heartbeat_timeout)) id = 0;
  }
  if (id == leader_id_) return;
  leader_id_ = id;
  std::lock_guard lk(leader_mu_);
  leader_address_ = id != 0 && address != nullptr ? address : "";
}

void Proposer::update_leadership() {
  track_leader();
  leading_ = raft_ != nullptr && !stopping_ && !diverged_ && raft_state(raft_) == RAFT_LEADER;
  if (raft_ == nullptr || stopping_ || diverged_) {
    writes_allowed_ = false;
    return;
  }
  if (raft_state(raft_) != RAFT_LEADER) {
    writes_allowed_ = false;
    ready_term_ = 0;
    return;
  }
  const raft_term term = raft_->current_term;
  if (ready_term_ == term || barrier_term_ == term) return;
  // A new term: everything earlier leaders committed must be applied before
  // this node lets a transaction start, or it would build on a stale state.
  writes_allowed_ = false;
  auto* b = new BarrierRequest{{}, this, term};
  b->req.data = b;
  if (raft_barrier(raft_, &b->req, barrier_cb) != 0) {
    delete b;
    return;  // try again on the next poll
  }
  outstanding_barriers_.insert(b);
  barrier_term_ = term;
}

void Proposer::barrier_cb(struct raft_barrier* req, int status) {
  std::unique_ptr<BarrierRequest> b(static_cast<BarrierRequest*>(req->data));
  b->self->outstanding_barriers_.erase(b.get());
  at_c_boundary("barrier completion", [&] { b->self->barrier_done(b->term, status); });
}

void Proposer::barrier_done(raft_term term, int status) {
  if (barrier_term_ == term) barrier_term_ = 0;
  if (status != 0 || stopping_ || diverged_) return;
  if (raft_state(raft_) != RAFT_LEADER || raft_->current_term != term) return;
  ready_term_ = term;
  // Transactions an earlier leader streamed but never finished are dropped.
  for (const auto& [name, txn] : vfs_->pending_txns()) undo(name, txn);
  writes_allowed_ = true;
}

}  // namespace sqraft
