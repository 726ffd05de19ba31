/** A worker thread of `npm run calibrate`: runs the chunks of windows it is given (see calibrate.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { cells } from './calibrate-sim.js';
import { runTask } from './calibrate.js';

const { windows, seed } = workerData as { windows: number; seed: number };
const list = cells(windows);
parentPort!.on('message', (task: { cell: number; from: number; to: number }) => {
  parentPort!.postMessage(runTask(list, task, seed));
});
