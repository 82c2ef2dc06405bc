#include "clients.h"

#include "rows_encoder.h"

namespace sqraft {

Clients::Clients(GatewayContext& ctx, DbWriter::Options writer_options, WriterPool& pool)
    : ctx_(ctx), writer_options_(std::move(writer_options)), pool_(pool) {
  writer_options_.row_encoder = &make_rows_encoder;
}

Clients::~Clients() { sessions_.clear(); }

void Clients::add(uv_stream_t* stream) {
  const uint64_t id = next_session_++;
  auto s = std::make_unique<Session>(ctx_, id, stream);
  Session* raw = s.get();
  sessions_[id] = std::move(s);
  raw->start();
}

DbWriter& Clients::writer(const std::string& db) {
  auto& w = writers_[db];
  if (!w) w = std::make_unique<DbWriter>(ctx_.vfs(), db, writer_options_, pool_);
  return *w;
}

void Clients::reap(Session* s) {
  // Deferred: the session may be on the stack. Refused only once the loop
  // is gone, and then the node frees every session itself.
  const uint64_t id = s->id();
  (void)ctx_.post([this, id] {
    auto it = sessions_.find(id);
    if (it != sessions_.end() && it->second->reapable()) sessions_.erase(it);
  });
}

Clients::Leadership Clients::poll(bool is_leader) {
  Leadership change = Leadership::kSame;
  if (was_leader_ && !is_leader) {
    change = Leadership::kLost;
    for (auto& [name, w] : writers_) w->abort_owner(Status::LeadershipLost());
    for (auto& [id, s] : sessions_) s->on_leadership_lost();
  } else if (!was_leader_ && is_leader) {
    change = Leadership::kGained;
  }
  was_leader_ = is_leader;
  if (!parked_.empty()) {
    std::vector<uint64_t> still;
    for (uint64_t id : parked_) {
      auto it = sessions_.find(id);
      if (it != sessions_.end() && it->second->retry_parked()) still.push_back(id);
    }
    parked_.swap(still);
  }
  return change;
}

void Clients::close_all(const std::string& why) {
  for (auto& [id, s] : sessions_) s->close(why);
}

void Clients::stop_writers() {
  for (auto& [name, w] : writers_) w->stop();
}

}  // namespace sqraft
