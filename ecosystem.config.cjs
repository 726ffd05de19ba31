// Run release-guard under pm2 instead of systemd:  pm2 start ecosystem.config.cjs
// Use a *separate* pm2 (its own PM2_HOME) or systemd if you can: a guard inside the very pm2 it
// watches goes down with that pm2.
module.exports = {
  apps: [
    {
      name: 'release-guard',
      script: 'dist/cli/main.js',
      node_args: ['--max-semi-space-size=2', '--optimize-for-size'], // as in the systemd unit's ExecStart (it says why): a steady RSS
      args: ['start', '--config', process.env.RELEASE_GUARD_CONFIG || '/etc/release-guard/config.yaml'],
      exec_mode: 'fork',
      instances: 1, // exactly one guard acts per service
      autorestart: true,
      kill_timeout: 120000, // lets a running rollback step finish on stop
      max_memory_restart: '256M',
      env: { NODE_ENV: 'production' },
    },
  ],
};
