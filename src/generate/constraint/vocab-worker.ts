/**
 * Worker thread of prebuildTokenTable (vocab.ts): builds the token table of the pieces it is
 * given and transfers it back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { tableBuffers, tableFromPieces, type TokenPieces } from './vocab.js';

const table = tableFromPieces(workerData as TokenPieces);
parentPort!.postMessage(table, tableBuffers(table));
