#include "command.h"

#include <cstring>
#include <limits>

#include "byte_order.h"
#include "command.pb.h"
#include "db_name.h"
#include "wal_format.h"

namespace sqraft {

namespace {

// u32 little-endian length of the Protobuf message, then 4 zero bytes.
constexpr size_t kCommandPrefix = 8;

void encode_frames(const FramesBatch& b, proto::Frames* out) {
  out->set_db(b.db);
  out->set_txn_id(b.txn_id);
  out->set_page_size(b.page_size);
  out->mutable_positions()->Reserve(int(b.frames.size()));
  out->mutable_page_numbers()->Reserve(int(b.frames.size()));
  std::string* pages = out->mutable_pages();
  pages->resize(b.frames.size() * size_t(b.page_size));
  char* dst = pages->data();
  for (const CapturedFrame& f : b.frames) {
    out->add_positions(f.position);
    out->add_page_numbers(f.pgno);
    std::memcpy(dst, f.data.get(), b.page_size);
    dst += b.page_size;
  }
  out->set_commit(b.commit);
  if (b.commit) {
    out->set_frame_count(b.frame_count);
    out->set_db_size(b.db_size);
    out->set_checksum(b.checksum);
  }
}

Status check_db_name(const std::string& db) {
  return validate_db_name(db).with_context("malformed command");
}

Status check_page_size(uint32_t page_size) {
  if (!wal::valid_page_size(page_size)) {
    return Status::Corruption("malformed command: invalid page size " + std::to_string(page_size));
  }
  return Status::Ok();
}

Result<FramesBatch> decode_frames(const proto::Frames& in) {
  if (Status s = check_db_name(in.db()); !s.ok()) return s;
  if (Status s = check_page_size(in.page_size()); !s.ok()) return s;
  if (in.txn_id() == 0) return Status::Corruption("malformed command: frames without a transaction id");
  const size_t n = size_t(in.positions_size());
  if (size_t(in.page_numbers_size()) != n) {
    return Status::Corruption("malformed command: " + std::to_string(n) + " positions but " +
                              std::to_string(in.page_numbers_size()) + " page numbers");
  }
  if (in.pages().size() != n * in.page_size()) {
    return Status::Corruption("malformed command: " + std::to_string(in.pages().size()) +
                              " bytes of pages for " + std::to_string(n) + " frames of " +
                              std::to_string(in.page_size()) + " bytes");
  }
  if (in.commit() && (in.frame_count() == 0 || in.db_size() == 0)) {
    return Status::Corruption("malformed command: commit without frame count or database size");
  }
  if (!in.commit() && n == 0) return Status::Corruption("malformed command: empty non-commit frames");
  FramesBatch b;
  b.db = in.db();
  b.txn_id = in.txn_id();
  b.page_size = in.page_size();
  b.commit = in.commit();
  b.frame_count = in.frame_count();
  b.db_size = in.db_size();
  b.checksum = in.checksum();
  b.frames.reserve(n);
  const auto* src = reinterpret_cast<const uint8_t*>(in.pages().data());
  uint32_t last_position = 0;
  for (size_t i = 0; i < n; i++) {
    const uint32_t position = in.positions(int(i));
    const uint32_t pgno = in.page_numbers(int(i));
    if (position <= last_position) {
      return Status::Corruption("malformed command: frame positions not ascending at " + std::to_string(i));
    }
    if (pgno == 0) return Status::Corruption("malformed command: page number 0");
    last_position = position;
    b.frames.push_back({position, pgno, copy_page(src + i * b.page_size, b.page_size)});
  }
  return b;
}

}  // namespace

std::string encode_command(const Command& cmd) {
  proto::Command msg;
  msg.set_format_version(kCommandFormatVersion);
  msg.set_proposal_id(cmd.proposal_id);
  if (const auto* open = std::get_if<OpenCommand>(&cmd.body)) {
    proto::Open* o = msg.mutable_open();
    o->set_db(open->db);
    o->set_page_size(open->page_size);
    o->set_page1(reinterpret_cast<const char*>(open->page1.get()), open->page_size);
  } else if (const auto* frames = std::get_if<FramesBatch>(&cmd.body)) {
    encode_frames(*frames, msg.mutable_frames());
  } else if (const auto* undo = std::get_if<UndoCommand>(&cmd.body)) {
    msg.mutable_undo()->set_db(undo->db);
    msg.mutable_undo()->set_txn_id(undo->txn_id);
  } else {
    msg.mutable_checkpoint()->set_db(std::get<CheckpointCommand>(cmd.body).db);
  }
  // libraft's disk format wants entries in whole 8-byte words: frame the
  // Protobuf bytes with their length and pad.
  const std::string body = msg.SerializeAsString();
  std::string out(kCommandPrefix + (body.size() + 7) / 8 * 8, '\0');
  put_le32(reinterpret_cast<uint8_t*>(out.data()), uint32_t(body.size()));
  std::memcpy(out.data() + kCommandPrefix, body.data(), body.size());
  return out;
}

Result<Command> decode_command(const void* data, size_t size) {
  if (size > size_t(std::numeric_limits<int>::max())) {
    return Status::Corruption("malformed command: " + std::to_string(size) + " bytes is too large");
  }
  if (size < kCommandPrefix) return Status::Corruption("malformed command: " + std::to_string(size) + " bytes");
  const auto* p = static_cast<const uint8_t*>(data);
  const uint32_t n = get_le32(p);
  if (p[4] != 0 || p[5] != 0 || p[6] != 0 || p[7] != 0 || n > size - kCommandPrefix) {
    return Status::Corruption("malformed command: bad length prefix");
  }
  proto::Command msg;
  if (!msg.ParseFromArray(p + kCommandPrefix, int(n))) return Status::Corruption("malformed command: cannot parse");
  if (msg.format_version() == 0 || msg.format_version() > kCommandFormatVersion) {
    return Status::Corruption("unsupported command format version " + std::to_string(msg.format_version()));
  }
  Command cmd;
  cmd.proposal_id = msg.proposal_id();
  switch (msg.body_case()) {
    case proto::Command::kOpen: {
      const proto::Open& o = msg.open();
      if (Status s = check_db_name(o.db()); !s.ok()) return s;
      if (Status s = check_page_size(o.page_size()); !s.ok()) return s;
      if (o.page1().size() != o.page_size()) {
        return Status::Corruption("malformed command: first page has " + std::to_string(o.page1().size()) +
                                  " bytes, expected " + std::to_string(o.page_size()));
      }
      if (std::memcmp(o.page1().data(), "SQLite format 3", 16) != 0) {
        return Status::Corruption("malformed command: first page is not a SQLite database header");
      }
      cmd.body = OpenCommand{o.db(), o.page_size(),
                             copy_page(reinterpret_cast<const uint8_t*>(o.page1().data()), o.page_size())};
      break;
    }
    case proto::Command::kFrames: {
      Result<FramesBatch> b = decode_frames(msg.frames());
      if (!b.ok()) return b.status();
      cmd.body = std::move(b).value();
      break;
    }
    case proto::Command::kUndo: {
      if (Status s = check_db_name(msg.undo().db()); !s.ok()) return s;
      if (msg.undo().txn_id() == 0) return Status::Corruption("malformed command: undo without a transaction id");
      cmd.body = UndoCommand{msg.undo().db(), msg.undo().txn_id()};
      break;
    }
    case proto::Command::kCheckpoint: {
      if (Status s = check_db_name(msg.checkpoint().db()); !s.ok()) return s;
      cmd.body = CheckpointCommand{msg.checkpoint().db()};
      break;
    }
    default:
      return Status::Corruption("malformed command: no body");
  }
  return cmd;
}

std::string describe(const Command& cmd) {
  if (const auto* o = std::get_if<OpenCommand>(&cmd.body)) return "open db=" + o->db;
  if (const auto* f = std::get_if<FramesBatch>(&cmd.body)) {
    return "frames db=" + f->db + " txn=" + std::to_string(f->txn_id) + " frames=" +
           std::to_string(f->frames.size()) + (f->commit ? " commit" : "");
  }
  if (const auto* u = std::get_if<UndoCommand>(&cmd.body)) return "undo db=" + u->db + " txn=" + std::to_string(u->txn_id);
  return "checkpoint db=" + std::get<CheckpointCommand>(cmd.body).db;
}

}  // namespace sqraft
