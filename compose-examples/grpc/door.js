#!/usr/bin/env node
// The demo's gRPC server and client (@grpc/grpc-js), one file:
//   node door.js serve [PORT]               serve demo.DoorManager (default port 50051)
//   node door.js call HOST:PORT METHOD ID   call one method; prints the reply's text, or
//                                           "status CODE NAME: details" and exits 1
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const { demo } = grpc.loadPackageDefinition(loader.loadSync(path.join(__dirname, 'door.proto'), { keepCase: true }));
const DOORS = { 1: { name: 'Airlock', location: 'Deck 3, port side' }, 2: { name: 'Bridge', location: 'Deck 1' } };

function serve(port) {
  const door = (id) => DOORS[id] || { name: 'unknown door', location: 'nowhere' };
  const server = new grpc.Server();
  server.addService(demo.DoorManager.service, {
    GetName: (call, done) => done(null, { text: door(call.request.door_id).name }),
    GetLocation: (call, done) => done(null, { text: door(call.request.door_id).location }),
    SetAccessCode: (call, done) => done(null, { text: `door ${call.request.door_id}: access code changed` }),
  });
  server.bindAsync(`[::]:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log(`demo.DoorManager listening on ${port}`);
  });
}

function call(target, method, id) {
  const client = new demo.DoorManager(target, grpc.credentials.createInsecure());
  const request = method === 'SetAccessCode' ? { door_id: id, code: '1234' } : { door_id: id };
  client[method](request, { deadline: Date.now() + 5000 }, (err, reply) => {
    if (err) {
      console.log(`status ${err.code} ${grpc.status[err.code]}: ${err.details}`);
      process.exit(1);
    }
    console.log(reply.text);
    process.exit(0);
  });
}

const [cmd, a, b, c] = process.argv.slice(2);
if (cmd === 'serve') serve(Number(a || 50051));
else if (cmd === 'call' && a && b && typeof demo.DoorManager.prototype[b] === 'function') call(a, b, Number(c || 1));
else {
  console.error('usage: door.js serve [PORT] | call HOST:PORT GetName|GetLocation|SetAccessCode [DOOR_ID]');
  process.exit(2);
}
