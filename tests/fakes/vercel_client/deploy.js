// Deploy a directory with Vercel's own client (@vercel/client) to whatever
// VERCEL_API_URL names: the tests point it at their stand-in API
// (tests/fakes/vercel_api.lua) to show that the stand-in takes what the
// real client sends, the missing-files flow and the polling included.
//
//   VERCEL_TOKEN=... VERCEL_API_URL=http://127.0.0.1:PORT node deploy.js DIR PROJECT TEAM [production]
//
// Prints one line per event the client yields, then the deployment as
// JSON on the last line; exits 1 on an error event.
'use strict';
const { createDeployment } = require('@vercel/client');

async function main() {
  const [dir, project, teamId, target] = process.argv.slice(2);
  const clientOptions = {
    token: process.env.VERCEL_TOKEN,
    apiUrl: process.env.VERCEL_API_URL,
    path: dir,
    teamId,
    skipAutoDetectionConfirmation: true,
  };
  const deploymentOptions = { name: project, project };
  if (target) deploymentOptions.target = target;
  for await (const event of createDeployment(clientOptions, deploymentOptions)) {
    if (event.type === 'error') {
      console.log('error ' + JSON.stringify(event.payload));
      process.exit(1);
    }
    console.log('event ' + event.type);
    if (event.type === 'alias-assigned') {
      const d = event.payload;
      console.log(JSON.stringify({ id: d.id, url: d.url, readyState: d.readyState }));
      return;
    }
  }
  console.log('error the client stopped before the alias was assigned');
  process.exit(1);
}

main().catch(err => {
  console.log('error ' + (err && err.stack ? err.stack : String(err)));
  process.exit(1);
});
