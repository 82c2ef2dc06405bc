#include "leader_lease.h"

#include <algorithm>
#include <vector>

namespace sqraft {

void LeaderLease::enter_term(raft_term term) {
  term_ = term;
  revoked_ = false;
  followers_.clear();
}

void LeaderLease::sent_request(raft_id to, raft_term term, uint64_t now_ms) {
  if (term != term_) enter_term(term);
  Follower& f = followers_[to];
  f.sent++;
  // Past the bound, a send is not recorded: a later lookup falls back to an
  // older recorded send, which is still a lower bound.
  if (f.sends.size() < kSendsMax) f.sends.emplace_back(f.sent, now_ms);
}

void LeaderLease::sent_timeout_now(raft_term term) {
  if (term != term_) enter_term(term);
  revoked_ = true;
}

void LeaderLease::received_result(raft_id from, raft_term term, bool success) {
  // Only a success proves the follower took a request of this term (a
  // rejection may answer a request of an older term).
  if (!success || term != term_) return;
  auto it = followers_.find(from);
  if (it == followers_.end()) return;
  Follower& f = it->second;
  if (f.succeeded >= f.sent) return;  // cannot happen; never count past what was sent
  f.succeeded++;
  // The follower has received at least `succeeded` of the requests: the
  // newest of them was sent no earlier than request number `succeeded`.
  while (!f.sends.empty() && f.sends.front().first <= f.succeeded) {
    f.confirmed_ms = std::max(f.confirmed_ms, f.sends.front().second);
    f.sends.pop_front();
  }
}

uint64_t LeaderLease::majority_confirmed_ms(const struct raft* raft) const {
  std::vector<uint64_t> times;
  unsigned voters = 0;
  for (unsigned i = 0; i < raft->configuration.n; i++) {
    const struct raft_server& s = raft->configuration.servers[i];
    if (s.role != RAFT_VOTER) continue;
    voters++;
    if (s.id == raft->id) {
      times.push_back(UINT64_MAX);  // this node never votes against itself while leading
      continue;
    }
    auto it = followers_.find(s.id);
    times.push_back(it == followers_.end() ? 0 : it->second.confirmed_ms);
  }
  if (voters == 0) return 0;
  // The time by which a majority confirmed: the (majority)-th largest.
  const unsigned majority = voters / 2 + 1;
  std::sort(times.begin(), times.end(), std::greater<uint64_t>());
  return times[majority - 1];
}

bool LeaderLease::held(const struct raft* raft, uint64_t now_ms, uint64_t lease_ms) const {
  if (raft->state != RAFT_LEADER || raft->current_term != term_ || revoked_) return false;
  const uint64_t t = majority_confirmed_ms(raft);
  if (t == UINT64_MAX) return true;  // a single voter: nobody else can be elected
  return t != 0 && now_ms < t + lease_ms;
}

}  // namespace sqraft
