// Value types that cross the boundary between the VFS and the replication
// layer: captured transaction frames, pending (streamed) transactions and
// database images for snapshots.
//
// Positions: the frames of one write transaction are numbered 1, 2, ... in
// the order SQLite placed them in its WAL, relative to the WAL end when the
// transaction started. A later frame at the same position replaces an
// earlier one (SQLite rewrites frames in place after a savepoint rollback or
// when a spilled page changes again). The commit frame's position is the
// transaction's final frame count; positions after it are discarded.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "page.h"
#include "status.h"

namespace sqraft {

struct CapturedFrame {
  uint32_t position = 0;  // 1-based, within the transaction
  uint32_t pgno = 0;
  PagePtr data;           // page_size bytes
};

// One replicated piece of a write transaction (the body of a Frames command).
struct FramesBatch {
  std::string db;
  uint64_t txn_id = 0;
  uint32_t page_size = 0;
  std::vector<CapturedFrame> frames;  // ascending positions
  bool commit = false;
  uint32_t frame_count = 0;  // commit only: position of the commit frame
  uint32_t db_size = 0;      // commit only: database size in pages after commit
  uint64_t checksum = 0;     // commit only: StateHash value after commit
};

// The frames of a streamed transaction received so far (pieces applied, commit
// not yet seen). Part of the replicated state: snapshots carry it.
struct PendingTxn {
  uint64_t txn_id = 0;  // 0: none
  std::map<uint32_t, CapturedFrame> frames;  // by position

  bool empty() const { return txn_id == 0; }
  void reset(uint64_t id = 0) {
    txn_id = id;
    frames.clear();
  }
};

// How far a database's logical size may run past the pages that a
// transaction or a snapshot carries. SQLite leaves a few pages unwritten —
// the lock-byte page at 1 GiB, freelist leaves freed by the transaction
// that allocated them before the page cache spilled them — and they read as
// zeros. More than this is a corrupt command or snapshot, refused: accepting
// it would cost memory and time in proportion to the size claimed (a page
// table and a hash per page), not to the bytes received — one frame of page
// 4,000,000,000 would ask for 64 GB.
inline constexpr uint32_t kMaxUnwrittenPages = uint32_t{1} << 20;

struct DbImage;

// Where the pages of a captured image still are (disk mode). While it
// exists, the capture keeps the files still: no checkpoint folds frames into
// the database file and the WAL does not start over. load() reads the pages
// into the image, on any thread.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual Status load(DbImage& img) = 0;
};

// A database as a snapshot holds it: file pages, the committed WAL frames
// that are not yet folded into them, and the pending transaction.
struct DbImage {
  struct WalFrame {
    uint32_t pgno = 0;
    uint32_t db_size = 0;  // non-zero on commit frames
    PagePtr data;
  };
  std::string name;
  uint32_t page_size = 0;
  std::vector<PagePtr> pages;   // pages[i] is page i + 1
  std::vector<WalFrame> wal;    // in WAL order; empty or ends with a commit frame
  uint32_t n_page = 0;          // logical database size in pages
  uint64_t checksum = 0;        // StateHash value of the logical content
  PendingTxn pending;
  uint64_t applied_index = 0;   // the log index of this state (0: unknown)
  // Set: pages and WAL frames are still in the files (nullptr here); see
  // load_image().
  std::shared_ptr<ImageSource> source;
};

// Reads what `img` still has in the files, then lets the files go. No-op
// for an image that has its pages.
inline Status load_image(DbImage& img) {
  if (!img.source) return Status::Ok();
  Status s = img.source->load(img);
  img.source.reset();
  return s;
}

}  // namespace sqraft
