import { parentPort } from 'worker_threads';
import { deleteLink } from './rtnl';

// The LinkReaper's thread: deletes the links it is sent, in order, and says when each is done.
let chain = Promise.resolve();
parentPort!.on('message', (name: string) => {
  chain = chain.then(async () => {
    try {
      parentPort!.postMessage({ name, deleted: await deleteLink(name) });
    } catch (err) {
      parentPort!.postMessage({ name, error: (err as Error).message });
    }
  });
});
