import { describe, expect, it } from 'vitest';
import { stepEnvironment } from './step-env.js';

describe('stepEnvironment', () => {
  it('passes what programs need, drops everything else, and puts the step own variables on top', () => {
    const guard = {
      PATH: '/usr/bin',
      HOME: '/var/lib/release-guard',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      USER: 'release-guard',
      KUBECONFIG: '/etc/kube/config',
      RELEASE_GUARD_TOKEN: 'api-token',
      DB_PASSWORD: 'hunter2',
      SLACK_HOOK_URL: 'https://hooks.example/T/B/X',
      NODE_OPTIONS: '--require /evil.js',
    };
    expect(stepEnvironment({ MYSQL_PWD: 'step-only', PATH: '/opt/bin' }, guard)).toEqual({
      PATH: '/opt/bin',
      HOME: '/var/lib/release-guard',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      USER: 'release-guard',
      KUBECONFIG: '/etc/kube/config',
      MYSQL_PWD: 'step-only',
    });
  });
});
