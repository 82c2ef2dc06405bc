#include "fsm.h"

#include <spdlog/spdlog.h>

#include "command.h"
#include "state_hash.h"
#include "vfs.h"

namespace sqraft {

Fsm::Fsm(Vfs& vfs, FsmObserver& observer) : vfs_(vfs), observer_(observer) {
  fsm_.version = 3;
  fsm_.data = this;
  fsm_.apply = apply;
  fsm_.snapshot = snapshot;
  fsm_.restore = restore;
  fsm_.snapshot_finalize = snapshot_finalize;
  fsm_.snapshot_async = snapshot_async;
}

Fsm::~Fsm() = default;

namespace {

const std::string& command_db(const Command& cmd) {
  if (auto* open = std::get_if<OpenCommand>(&cmd.body)) return open->db;
  if (auto* frames = std::get_if<FramesBatch>(&cmd.body)) return frames->db;
  if (auto* undo = std::get_if<UndoCommand>(&cmd.body)) return undo->db;
  return std::get<CheckpointCommand>(cmd.body).db;
}

// A failure to write the node's own database files (disk mode): applying
// on would leave this copy behind the others without anyone noticing.
bool local_write_failure(const Status& s) {
  const int primary = s.code() & 0xff;
  return primary == SQLITE_FULL || (primary == SQLITE_IOERR && !s.is_not_leader() && !s.is_leadership_lost() &&
                                    !s.is_outcome_unknown() && s.code() != kErrRaftWrite && s.code() != kErrStorageWrite);
}

}  // namespace

Status Fsm::apply_command(const struct raft_buffer* buf, uint64_t index, uint64_t* proposal_id, bool* skipped) {
  Result<Command> decoded = decode_command(buf->base, buf->len);
  if (!decoded.ok()) return decoded.status();
  Command& cmd = decoded.value();
  *proposal_id = cmd.proposal_id;
  if (index > 0 && vfs_.on_disk() && index <= vfs_.recovered_index(command_db(cmd))) {
    *skipped = true;  // the database's files already hold this entry
    return Status::Ok();
  }
  const bool own = cmd.proposal_id != 0 && observer_.is_own(cmd.proposal_id);
  if (auto* open = std::get_if<OpenCommand>(&cmd.body)) {
    return vfs_.apply_open(open->db, open->page1, index);
  }
  if (auto* frames = std::get_if<FramesBatch>(&cmd.body)) {
    const bool commit = frames->commit;
    std::string db = frames->db;
    Status s = vfs_.apply_frames(std::move(*frames), own, index);
    if (s.ok() && commit) observer_.committed(db);
    return s;
  }
  if (auto* undo = std::get_if<UndoCommand>(&cmd.body)) {
    return vfs_.apply_undo(undo->db, undo->txn_id, index);
  }
  return vfs_.apply_checkpoint(std::get<CheckpointCommand>(cmd.body).db, index);
}

int Fsm::apply(struct raft_fsm* raw, const struct raft_buffer* buf, void** result) {
  Fsm* self = static_cast<Fsm*>(raw->data);
  *result = nullptr;
  if (self->halted_) return RAFT_SHUTDOWN;  // stop applying: the node is going down
  // Read before applying: `buf` points into libraft's in-memory log, and
  // applying a commit can propose a Checkpoint, whose raft_apply may grow
  // (move) that log. `buf` must not be used after apply_command.
  const size_t len = buf->len;
  // libraft advances last_applied after apply returns.
  const uint64_t index = self->raft_ ? raft_last_applied(self->raft_) + 1 : 0;
  self->last_index_ = index;
  try {
    uint64_t proposal_id = 0;
    bool skipped = false;
    Status s = self->apply_command(buf, index, &proposal_id, &skipped);
    if (skipped) {
      self->skipped_++;
      if (proposal_id != 0) self->observer_.applied(proposal_id, s);
      return 0;
    }
    self->applied_++;
    if (index > 0 && index <= self->replay_end_) self->replayed_++;
    if (self->metrics_) {
      self->metrics_->applied_entries++;
      self->metrics_->applied_bytes += len;
    }
    if (self->vfs_.on_disk() && local_write_failure(s)) {
      // A full disk is not a bug: an error, and the node stops; the log
      // still holds the entry, a restart applies it again.
      spdlog::error("apply: the database files cannot be written: {}", s.message());
      self->halted_ = true;
      const Status why = Status::Error(kErrStorageWrite, "the database files could not be written: " + s.message());
      // The entry is committed (it is being applied), this copy just cannot
      // show it: its writer learns the outcome is unknown, not a failure.
      if (proposal_id != 0) {
        self->observer_.applied(proposal_id, Status::Error(kErrOutcomeUnknown, "commit outcome unknown: " + why.message()));
      }
      self->observer_.diverged(why);
      return RAFT_IOERR;
    }
    if (s.is_divergence()) {
      spdlog::critical("FATAL: {}", s.message());
      self->halted_ = true;
      if (proposal_id != 0) self->observer_.applied(proposal_id, s);
      self->observer_.diverged(s);
      return RAFT_CORRUPT;
    }
    if (!s.ok()) spdlog::warn("apply: command skipped: {}", s.message());
    if (proposal_id != 0) self->observer_.applied(proposal_id, s);
    return 0;
  } catch (const std::exception& e) {
    // Only allocation failures can get here; never let them cross into C.
    spdlog::critical("apply: {}", e.what());
    self->halted_ = true;
    self->observer_.diverged(Status::NoMemory(std::string("apply: ") + e.what()));
    return RAFT_NOMEM;
  }
}

int Fsm::snapshot(struct raft_fsm* raw, struct raft_buffer* bufs[], unsigned* n_bufs) {
  Fsm* self = static_cast<Fsm*>(raw->data);
  if (self->halted_) return RAFT_SHUTDOWN;
  if (self->pending_) return RAFT_BUSY;
  try {
    self->pending_ = std::make_unique<PendingSnapshot>();
    self->pending_->images = self->vfs_.capture();
    // libraft takes the snapshot at its last applied index.
    self->pending_->index = self->raft_ ? raft_last_applied(self->raft_) : 0;
  } catch (const std::exception& e) {
    spdlog::error("snapshot: {}", e.what());
    self->pending_.reset();
    return RAFT_NOMEM;
  }
  *bufs = nullptr;
  *n_bufs = 0;
  return 0;
}

int Fsm::snapshot_async(struct raft_fsm* raw, struct raft_buffer* bufs[], unsigned* n_bufs) {
  Fsm* self = static_cast<Fsm*>(raw->data);
  PendingSnapshot* p = self->pending_.get();
  if (p == nullptr) return RAFT_INVALID;
  try {
    if (self->vfs_.on_disk()) {
      // Disk mode: record the files' state too (at or past the snapshot's
      // index), so that a restart keeps them instead of installing this
      // snapshot over them. A failure only costs that restart time.
      if (Status s = self->vfs_.persist_all(); !s.ok()) spdlog::warn("snapshot: recording the database files: {}", s.message());
    }
    // Disk mode: the pages are read from the files here, off the loop.
    for (DbImage& img : p->images) {
      if (Status s = load_image(img); !s.ok()) {
        spdlog::error("snapshot: {}", s.message());
        return RAFT_IOERR;
      }
    }
    // While every page passes through here anyway, check the content against
    // the incrementally tracked checksum: silent local corruption shows up.
    for (const DbImage& img : p->images) {
      const std::vector<PagePtr> pages = Vfs::logical_pages(img);
      StateHash h(img.page_size);
      h.rebuild(uint32_t(pages.size()), [&](uint32_t pg) { return pages[pg - 1].get(); });
      if (h.value() != img.checksum) {
        p->failure = Status::Divergence("state divergence: db '" + img.name +
                                        "': content does not match its tracked checksum");
        return RAFT_CORRUPT;
      }
    }
    p->encoded = encode_snapshot(p->images, p->index);
    p->bufs.reset(new struct raft_buffer[p->encoded.size()]);
    for (size_t i = 0; i < p->encoded.size(); i++) {
      p->bufs[i].base = p->encoded[i].data.get();
      p->bufs[i].len = p->encoded[i].size;
    }
  } catch (const std::exception& e) {
    spdlog::error("snapshot: {}", e.what());
    return RAFT_NOMEM;
  }
  *bufs = p->bufs.get();
  *n_bufs = unsigned(p->encoded.size());
  return 0;
}

int Fsm::snapshot_finalize(struct raft_fsm* raw, struct raft_buffer* bufs[], unsigned* n_bufs) {
  Fsm* self = static_cast<Fsm*>(raw->data);
  if (self->pending_ && !self->pending_->encoded.empty()) {
    self->snapshots_++;
    if (self->metrics_) {
      uint64_t bytes = 0;
      for (const SnapshotBuffer& b : self->pending_->encoded) bytes += b.size;
      self->metrics_->snapshots_taken++;
      self->metrics_->snapshot_last_bytes = bytes;
      self->metrics_->snapshot_seconds.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - self->pending_->started).count());
    }
  }
  Status failure = self->pending_ ? self->pending_->failure : Status::Ok();
  self->pending_.reset();
  if (failure.is_divergence() && !self->halted_) {
    spdlog::critical("FATAL: {}", failure.message());
    self->halted_ = true;
    self->observer_.diverged(failure);
  }
  *bufs = nullptr;
  *n_bufs = 0;
  return 0;
}

int Fsm::restore(struct raft_fsm* raw, struct raft_buffer* buf) {
  Fsm* self = static_cast<Fsm*>(raw->data);
  try {
    uint64_t index = 0;
    Result<std::vector<DbImage>> images =
        decode_snapshot(static_cast<const uint8_t*>(buf->base), buf->len, &index);
    if (!images.ok()) {
      spdlog::error("restore refused: {}", images.status().message());
      return RAFT_CORRUPT;
    }
    if (Status s = self->vfs_.restore(images.value(), index); !s.ok()) {
      spdlog::error("restore refused: {}", s.message());
      return RAFT_CORRUPT;
    }
  } catch (const std::exception& e) {
    spdlog::error("restore: {}", e.what());
    return RAFT_NOMEM;
  }
  self->observer_.restored();
  self->restores_++;
  if (self->metrics_) self->metrics_->snapshots_restored++;
  raft_free(buf->base);  // on success the buffer is ours
  return 0;
}

}  // namespace sqraft
