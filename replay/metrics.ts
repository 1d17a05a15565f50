/** Ranking metrics of scores against 0/1 labels (ties handled by averaging). */

export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && scores[idx[j + 1]!] === scores[idx[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++)
      if (labels[idx[k]!]) {
        pos++;
        rankSum += avgRank;
      }
    i = j + 1;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Average precision (area under the precision-recall curve, step-wise). */
export function prAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  let totalPos = 0;
  for (let i = 0; i < n; i++) if (labels[i]) totalPos++;
  if (totalPos === 0) return NaN;
  let tp = 0;
  let fp = 0;
  let ap = 0;
  for (let i = 0; i < n;) {
    let j = i;
    let tpStep = 0;
    while (j < n && scores[idx[j]!] === scores[idx[i]!]) {
      if (labels[idx[j]!]) tpStep++;
      else fp++;
      j++;
    }
    tp += tpStep;
    ap += (tpStep / totalPos) * (tp / (tp + fp));
    i = j;
  }
  return ap;
}
