// Per-step CUDA timings summed by kernel kind; see Train.h.
#include "tools/mm-run/Train.h"

#include <algorithm>
#include <cstdio>

namespace mmrun {

void printProfile(const mm::Plan &p, std::vector<std::vector<float>> &perStep,
                  int runs) {
  // Median per step, summed by kernel kind in order of first appearance.
  std::vector<std::string> kinds;
  std::vector<double> kindMs;
  std::vector<int> kindSteps;
  double total = 0;
  for (size_t i = 0; i < perStep.size(); ++i) {
    std::vector<float> &v = perStep[i];
    std::sort(v.begin(), v.end());
    const double ms = v.empty() ? 0 : v[v.size() / 2];
    const std::string &k = p.steps[i].kernelName;
    auto it = std::find(kinds.begin(), kinds.end(), k);
    if (it == kinds.end()) {
      kinds.push_back(k);
      kindMs.push_back(0);
      kindSteps.push_back(0);
      it = kinds.end() - 1;
    }
    kindMs[it - kinds.begin()] += ms;
    ++kindSteps[it - kinds.begin()];
    total += ms;
  }
  std::fprintf(stderr,
               "mm-run: profile (median of %d, CUDA events per step):\n", runs);
  std::fprintf(stderr, "  %-22s %6s %11s %7s\n", "kernel", "steps", "ms",
               "share");
  for (size_t k = 0; k < kinds.size(); ++k)
    std::fprintf(stderr, "  %-22s %6d %11.3f %6.1f%%\n", kinds[k].c_str(),
                 kindSteps[k], kindMs[k],
                 total > 0 ? 100.0 * kindMs[k] / total : 0.0);
  std::fprintf(stderr, "  %-22s %6zu %11.3f\n", "all steps", p.steps.size(),
               total);
}

} // namespace mmrun
