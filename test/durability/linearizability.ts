// A small linearizability checker for a single register (one key), in the style of Wing & Gong with
// Lowe's memoisation (the algorithm Porcupine and Knossos use).
//
// History: operations with an invoke time and a return time (Infinity when the outcome is unknown,
// e.g. the call failed or was cut off: such a write may or may not have taken effect). Values are
// strings, `null` means "key absent". Writes should carry unique values so a read names its write;
// the checker is correct without that, just slower.
//
// Search: repeatedly pick an operation that may be linearized next (no other pending operation
// returned before it was invoked), apply it to the register, recurse; remember (set of linearized
// operations, register value) pairs already explored. Success when every completed operation is
// linearized (operations with unknown outcome may be left out).

export interface RegOp {
  kind: 'read' | 'write';
  /** Value written, or value a read returned (null: absent). */
  value: string | null;
  invoke: number;
  /** Return time; Infinity when the outcome is unknown (only meaningful for writes). */
  ret: number;
  /** Free-form label for reports (client, sequence). */
  label?: string;
}

export interface CheckResult {
  ok: boolean;
  /** True when the search gave up at the step limit (neither proven nor refuted). */
  inconclusive?: boolean;
  steps: number;
  /** On failure: the longest linearizable prefix found and the operations it could not place. */
  explanation?: string;
}

export function checkRegister(history: RegOp[], initial: string | null = null, maxSteps = 5_000_000): CheckResult {
  // Reads with unknown outcome tell nothing: drop them.
  const ops = history.filter((o) => !(o.kind === 'read' && !Number.isFinite(o.ret)))
    .slice().sort((a, b) => a.invoke - b.invoke);
  const n = ops.length;
  const words = Math.ceil(n / 32) || 1;
  const done = new Uint32Array(words);
  const mustDo = ops.reduce((c, o) => c + (Number.isFinite(o.ret) ? 1 : 0), 0);
  const seen = new Set<string>();
  let steps = 0;
  let best = 0;
  let bestOrder: number[] = [];
  const order: number[] = [];
  let finiteDone = 0;

  const isDone = (i: number) => (done[i >>> 5] & (1 << (i & 31))) !== 0;
  const setDone = (i: number, v: boolean) => {
    if (v) done[i >>> 5] |= 1 << (i & 31); else done[i >>> 5] &= ~(1 << (i & 31));
  };

  // Iterative DFS to avoid deep recursion on long histories.
  interface Frame { state: string | null; cands: number[]; next: number; }
  const candidates = (): number[] => {
    let minRet = Infinity;
    for (let i = 0; i < n; i++) if (!isDone(i) && ops[i].ret < minRet) minRet = ops[i].ret;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      if (isDone(i)) continue;
      if (ops[i].invoke > minRet) break; // sorted by invoke: nothing later can go next
      out.push(i);
    }
    return out;
  };

  const stack: Frame[] = [{ state: initial, cands: candidates(), next: 0 }];
  while (stack.length > 0) {
    if (finiteDone === mustDo) return { ok: true, steps };
    if (++steps > maxSteps) return { ok: false, inconclusive: true, steps, explanation: `gave up after ${maxSteps} steps` };
    const f = stack[stack.length - 1];
    if (f.next >= f.cands.length) {
      // Backtrack.
      stack.pop();
      const i = order.pop();
      if (i !== undefined) { setDone(i, false); if (Number.isFinite(ops[i].ret)) finiteDone--; }
      continue;
    }
    const i = f.cands[f.next++];
    const op = ops[i];
    let newState: string | null;
    if (op.kind === 'write') newState = op.value;
    else if (op.value === f.state) newState = f.state;
    else continue; // read does not match the register here
    setDone(i, true);
    const key = `${done.join(',')}|${newState === null ? '\u0000' : newState}`;
    if (seen.has(key)) { setDone(i, false); continue; }
    seen.add(key);
    order.push(i);
    if (Number.isFinite(op.ret)) finiteDone++;
    if (order.length > best) { best = order.length; bestOrder = order.slice(); }
    stack.push({ state: newState, cands: candidates(), next: 0 });
  }
  if (finiteDone === mustDo) return { ok: true, steps };
  // Explain: the best partial linearization and the completed operations it left out.
  const placed = new Set(bestOrder);
  const fmt = (o: RegOp) => `${o.kind}(${o.value === null ? 'absent' : o.value}) [${o.invoke.toFixed(3)}..${Number.isFinite(o.ret) ? o.ret.toFixed(3) : '?'}]${o.label ? ' ' + o.label : ''}`;
  const lastPlaced = bestOrder.slice(-5).map((i) => fmt(ops[i]));
  const stuck = ops.map((o, i) => ({ o, i })).filter(({ o, i }) => !placed.has(i) && Number.isFinite(o.ret))
    .slice(0, 6).map(({ o }) => fmt(o));
  return {
    ok: false, steps,
    explanation: `not linearizable: longest linearizable prefix has ${best} of ${n} ops; it ends with\n    ${lastPlaced.join('\n    ')}\n  and cannot place\n    ${stuck.join('\n    ')}`,
  };
}
