// Command codec: the one place that turns replicated commands into bytes and
// back.
//
// A command is a Protobuf `sqraft.proto.Command` (proto/command.proto),
// framed as: u32 little-endian length, 4 zero bytes, the message, zero
// padding to a multiple of 8 bytes (libraft stores entries in whole words).
// decode_command() validates everything a malformed or hostile entry could
// get wrong (format version, sizes, page numbers, names) and returns an error
// Status instead of ever asserting or crashing.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "frames.h"
#include "status.h"

namespace sqraft {

inline constexpr uint32_t kCommandFormatVersion = 1;

struct OpenCommand {
  std::string db;
  uint32_t page_size = 0;
  PagePtr page1;
};
struct UndoCommand {
  std::string db;
  uint64_t txn_id = 0;
};
struct CheckpointCommand {
  std::string db;
};

struct Command {
  uint64_t proposal_id = 0;
  std::variant<OpenCommand, FramesBatch, UndoCommand, CheckpointCommand> body;
};

// Serialises `cmd`. The returned bytes are owned by the caller.
std::string encode_command(const Command& cmd);
// Parses and validates one command.
Result<Command> decode_command(const void* data, size_t size);

// A short description for logs: "frames db=app txn=... frames=3 commit".
std::string describe(const Command& cmd);

}  // namespace sqraft
