// LeaderLease: whether this leader can still be the only one, so that it may
// answer a read from its own state without a round of Raft (docs/reliability.md
// "Reads").
//
// Raft's rule the lease rests on (libraft's recvRequestVote, Raft thesis
// §4.2.3): a follower that has heard from a current leader grants no vote
// and no pre-vote, and starts no election, until its election timer runs out
// — at least one election timeout after it last heard from that leader. So
// if a majority of voters received a message of this leader's term at or
// after time T, no other leader can be elected before T + election timeout.
// (A node that restarted forgets its leader; RaftIoShim makes it ignore vote
// requests for one election timeout after it starts, which keeps the rule.)
//
// What the leader observes is its own sends and the followers' results, not
// when a follower received a message. The lease bounds that from below
// without matching requests to answers: each follower answers every
// AppendEntries (and InstallSnapshot) with one result, and a *successful*
// result of term T answers a request of term T. So once k successful results
// of this term came back from a follower, it has received at least k of this
// term's requests, and the latest of those was sent no earlier than the k-th
// request sent to it (the largest of any k of the send times is at least the
// k-th smallest). Lost, reordered or rejected messages only make the bound
// older. The lease holds while a majority (this node included) has such a
// bound within `lease_ms` of now; lease_ms is below the election timeout, the
// margin covering clock-rate differences between machines.
//
// A leadership transfer (TimeoutNow sent) lets a follower start an election
// at once, "disrupting" the leader: the lease ends for the rest of the term.
//
// Threads: the node's loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>

#include "raft_api.h"

namespace sqraft {

class LeaderLease {
 public:
  // At most this many send times are kept per follower; past it sends are
  // not recorded (the bound stays correct, only older).
  static constexpr size_t kSendsMax = 4096;

  // A request of `term` (AppendEntries or InstallSnapshot) was sent to `to`.
  void sent_request(raft_id to, raft_term term, uint64_t now_ms);
  // A TimeoutNow was sent in `term`: no lease for the rest of it.
  void sent_timeout_now(raft_term term);
  // An AppendEntries result arrived from `from`.
  void received_result(raft_id from, raft_term term, bool success);

  // True if no other leader can have been elected by `now_ms`: this node is
  // the leader of `raft`'s current term and a majority of its voters (itself
  // included) confirmed this term within `lease_ms`.
  bool held(const struct raft* raft, uint64_t now_ms, uint64_t lease_ms) const;

  // The oldest confirmation time the majority shares (0 if none), for tests.
  uint64_t majority_confirmed_ms(const struct raft* raft) const;

 private:
  struct Follower {
    uint64_t sent = 0;       // requests of term_ sent
    uint64_t succeeded = 0;  // successful results of term_ received
    std::deque<std::pair<uint64_t, uint64_t>> sends;  // (request number, send time), oldest first
    uint64_t confirmed_ms = 0;  // it received a request sent at or after this
  };
  void enter_term(raft_term term);

  raft_term term_ = 0;
  bool revoked_ = false;
  std::unordered_map<raft_id, Follower> followers_;
};

}  // namespace sqraft
