#include "raft_io_shim.h"

#include <spdlog/spdlog.h>

#include <uv.h>

#include <algorithm>
#include <cstring>

namespace sqraft {

// An append request of the shim's own, around libraft's.
struct RaftIoShim::Append {
  struct raft_io_append req;
  RaftIoShim* shim;
  struct raft_io_append* theirs;
  raft_io_append_cb cb;
};

RaftIoShim::RaftIoShim(struct raft_io* inner) : inner_(inner) {
  inner_->data = this;
  outer_.version = inner_->version;
  outer_.impl = this;
  outer_.init = init;
  outer_.close = close;
  outer_.load = load;
  outer_.start = start;
  outer_.bootstrap = bootstrap;
  outer_.recover = recover;
  outer_.set_term = set_term;
  outer_.set_vote = set_vote;
  outer_.send = send;
  outer_.append = append;
  outer_.truncate = truncate;
  outer_.snapshot_put = snapshot_put;
  outer_.snapshot_get = snapshot_get;
  outer_.time = time;
  outer_.random = random;
  outer_.async_work = inner_->async_work != nullptr ? async_work : nullptr;
}

// libraft reads the io's errmsg after a failed call.
void RaftIoShim::keep_errmsg(int rv) {
  if (rv != 0) std::memcpy(outer_.errmsg, inner_->errmsg, sizeof outer_.errmsg);
}

void RaftIoShim::check_write(const char* what, int rv) {
  if (rv == 0 || rv == RAFT_CANCELED || closing_ || io_failed_) return;
  io_failed_ = true;
  std::string why = std::string(what) + ": " + raft_strerror(rv);
  if (inner_->errmsg[0] != '\0') why += std::string(" (") + inner_->errmsg + ")";
  if (on_io_failure_) on_io_failure_(why);
}

int RaftIoShim::init(struct raft_io* io, raft_id id, const char* address) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->init(s->inner_, id, address);
  s->keep_errmsg(rv);
  return rv;
}

void RaftIoShim::close(struct raft_io* io, raft_io_close_cb cb) {
  RaftIoShim* s = of(io);
  s->closing_ = true;
  s->close_ = cb;
  s->inner_->close(s->inner_, cb != nullptr ? on_close : nullptr);
}

void RaftIoShim::on_close(struct raft_io* inner) {
  RaftIoShim* s = of_inner(inner);
  if (s->close_) s->close_(&s->outer_);
}

int RaftIoShim::load(struct raft_io* io, raft_term* term, raft_id* voted_for, struct raft_snapshot** snapshot,
                     raft_index* start_index, struct raft_entry* entries[], size_t* n_entries) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->load(s->inner_, term, voted_for, snapshot, start_index, entries, n_entries);
  s->keep_errmsg(rv);
  return rv;
}

int RaftIoShim::start(struct raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  RaftIoShim* s = of(io);
  s->tick_ = tick;
  s->recv_ = recv;
  s->started_ms_ = now_ms();
  const int rv = s->inner_->start(s->inner_, msecs, on_tick, on_recv);
  s->keep_errmsg(rv);
  return rv;
}

void RaftIoShim::on_tick(struct raft_io* inner) {
  RaftIoShim* s = of_inner(inner);
  s->tick_(&s->outer_);
}

// Libuv's monotonic clock, read now (uv_now() is the loop's cached time,
// which may lag; a lease check must not use a time from the past).
uint64_t RaftIoShim::now_ms() { return uv_hrtime() / 1000000; }

bool RaftIoShim::lease_held(uint64_t lease_ms) const {
  return raft_ != nullptr && lease_.held(raft_, now_ms(), lease_ms);
}

void RaftIoShim::watch_send(const struct raft_message* m) {
  switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES:
      lease_.sent_request(m->server_id, m->append_entries.term, now_ms());
      break;
    case RAFT_IO_INSTALL_SNAPSHOT:
      lease_.sent_request(m->server_id, m->install_snapshot.term, now_ms());
      break;
    case RAFT_IO_TIMEOUT_NOW:
      lease_.sent_timeout_now(m->timeout_now.term);
      break;
    default:
      break;
  }
}

bool RaftIoShim::ignore_vote(const struct raft_message* m) {
  if (m->type != RAFT_IO_REQUEST_VOTE || raft_ == nullptr || m->request_vote.disrupt_leader) return false;
  if (now_ms() >= started_ms_ + raft_->election_timeout) return false;
  if (votes_ignored_++ == 0 || spdlog::should_log(spdlog::level::debug)) {
    spdlog::info("raft: ignoring a {}vote request from {} within an election timeout of starting",
                 m->request_vote.pre_vote ? "pre-" : "", m->server_id);
  }
  return true;
}

void RaftIoShim::on_recv(struct raft_io* inner, struct raft_message* msg) {
  RaftIoShim* s = of_inner(inner);
  if (s->ignore_vote(msg)) return;
  if (msg->type == RAFT_IO_APPEND_ENTRIES_RESULT) {
    const auto& r = msg->append_entries_result;
    s->lease_.received_result(msg->server_id, r.term, r.rejected == 0);
  }
  if (msg->type != RAFT_IO_APPEND_ENTRIES) {
    s->recv_(&s->outer_, msg);
    return;
  }
  s->skip_snapshotted(&msg->append_entries);
  // A result libraft sends before this returns answers exactly this request.
  s->in_append_ = true;
  s->proven_ = msg->append_entries.prev_log_index + msg->append_entries.n_entries;
  s->recv_(&s->outer_, msg);
  s->in_append_ = false;
}

// An AppendEntries that starts before this follower's snapshot: libraft
// 0.15 looks the entries it compacted up in its log and crashes (seen in the
// fixture's fault schedules: a new leader probing back to index 1). Every
// entry up to the snapshot is committed (a node snapshots only what it
// applied), so the leader's entries there are the ones snapshotted (Log
// Matching, Leader Completeness): drop them and let the request start at the
// snapshot, whose term this node knows. Both backends decode a message's
// entries into one batch, which libraft frees with the array.
void RaftIoShim::skip_snapshotted(struct raft_append_entries* ae) {
  const auto* r = static_cast<const struct raft*>(outer_.data);
  const raft_index snap = r != nullptr ? r->log.snapshot.last_index : 0;
  if (ae->prev_log_index >= snap) return;
  const unsigned drop = unsigned(std::min<raft_index>(snap - ae->prev_log_index, ae->n_entries));
  const unsigned keep = ae->n_entries - drop;
  struct raft_entry* kept = nullptr;
  if (keep > 0) {
    kept = static_cast<struct raft_entry*>(raft_malloc(keep * sizeof *kept));
    if (kept == nullptr) return;  // out of memory: leave the request as it came
    std::memcpy(kept, ae->entries + drop, keep * sizeof *kept);
  } else if (ae->n_entries > 0) {
    raft_free(ae->entries[0].batch);
  }
  raft_free(ae->entries);
  spdlog::debug("raft: AppendEntries from index {} starts before this node's snapshot at {}: {} entries skipped",
                ae->prev_log_index + 1, snap, drop);
  ae->entries = kept;
  ae->n_entries = keep;
  ae->prev_log_index = snap;
  ae->prev_log_term = r->log.snapshot.last_term;
  snapshotted_skipped_++;
}

int RaftIoShim::send(struct raft_io* io, struct raft_io_send* req, const struct raft_message* message,
                     raft_io_send_cb cb) {
  RaftIoShim* s = of(io);
  const struct raft_message* out = message;
  struct raft_message fixed;
  if (s->in_append_ && message->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
      message->append_entries_result.rejected == 0 && message->append_entries_result.last_log_index > s->proven_) {
    // The message is encoded during the call, so a copy on the stack will do.
    fixed = *message;
    fixed.append_entries_result.last_log_index = s->proven_;
    out = &fixed;
    if (s->corrected_++ == 0 || spdlog::should_log(spdlog::level::debug)) {
      spdlog::info("raft: telling leader {} that the log matches up to {} (proven), not {} (libraft's hint)",
                   message->server_id, s->proven_, message->append_entries_result.last_log_index);
    }
  }
  s->watch_send(out);
  const int rv = s->inner_->send(s->inner_, req, out, cb);
  s->keep_errmsg(rv);
  return rv;
}

int RaftIoShim::bootstrap(struct raft_io* io, const struct raft_configuration* conf) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->bootstrap(s->inner_, conf);
  s->keep_errmsg(rv);
  return rv;
}

int RaftIoShim::recover(struct raft_io* io, const struct raft_configuration* conf) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->recover(s->inner_, conf);
  s->keep_errmsg(rv);
  return rv;
}

int RaftIoShim::set_term(struct raft_io* io, raft_term term) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->set_term(s->inner_, term);
  s->keep_errmsg(rv);
  s->check_write("saving the term", rv);
  return rv;
}

int RaftIoShim::set_vote(struct raft_io* io, raft_id server_id) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->set_vote(s->inner_, server_id);
  s->keep_errmsg(rv);
  s->check_write("saving the vote", rv);
  return rv;
}

int RaftIoShim::append(struct raft_io* io, struct raft_io_append* req, const struct raft_entry entries[], unsigned n,
                       raft_io_append_cb cb) {
  RaftIoShim* s = of(io);
  // The backend gets a request of ours, so that its completion passes here.
  auto* ours = new Append{{}, s, req, cb};
  ours->req.data = ours;
  const int rv = s->inner_->append(s->inner_, &ours->req, entries, n, on_append);
  s->keep_errmsg(rv);
  if (rv != 0) {
    delete ours;
    s->check_write("appending to the Raft log", rv);
  }
  return rv;
}

void RaftIoShim::on_append(struct raft_io_append* req, int status) {
  auto* ours = static_cast<Append*>(req->data);
  RaftIoShim* s = ours->shim;
  struct raft_io_append* theirs = ours->theirs;
  const raft_io_append_cb cb = ours->cb;
  delete ours;
  if (status != 0) {
    std::memcpy(s->outer_.errmsg, s->inner_->errmsg, sizeof s->outer_.errmsg);
    s->check_write("writing to the Raft log", status);
  }
  cb(theirs, status);
}

int RaftIoShim::truncate(struct raft_io* io, raft_index index) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->truncate(s->inner_, index);
  s->keep_errmsg(rv);
  s->check_write("truncating the Raft log", rv);
  return rv;
}

int RaftIoShim::snapshot_put(struct raft_io* io, unsigned trailing, struct raft_io_snapshot_put* req,
                             const struct raft_snapshot* snapshot, raft_io_snapshot_put_cb cb) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->snapshot_put(s->inner_, trailing, req, snapshot, cb);
  s->keep_errmsg(rv);
  return rv;
}

int RaftIoShim::snapshot_get(struct raft_io* io, struct raft_io_snapshot_get* req, raft_io_snapshot_get_cb cb) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->snapshot_get(s->inner_, req, cb);
  s->keep_errmsg(rv);
  return rv;
}

raft_time RaftIoShim::time(struct raft_io* io) {
  RaftIoShim* s = of(io);
  return s->inner_->time(s->inner_);
}

int RaftIoShim::random(struct raft_io* io, int min, int max) {
  RaftIoShim* s = of(io);
  return s->inner_->random(s->inner_, min, max);
}

int RaftIoShim::async_work(struct raft_io* io, struct raft_io_async_work* req, raft_io_async_work_cb cb) {
  RaftIoShim* s = of(io);
  const int rv = s->inner_->async_work(s->inner_, req, cb);
  s->keep_errmsg(rv);
  return rv;
}

}  // namespace sqraft
