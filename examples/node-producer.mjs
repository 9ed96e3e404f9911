// Enqueue echo from Node and print what a Python worker returns.
// In an app: import { Queue } from 'dothis';
import { Queue } from '../node-client/dist/esm/index.js';

const queue = new Queue('dothis', { url: process.env.DOTHIS_REDIS_URL });
const task = await queue.enqueue('echo', { text: 'ooh yeeah' });
console.log(await task.wait({ timeout: 30000 }));
await queue.close();
