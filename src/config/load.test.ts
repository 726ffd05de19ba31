import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../test/fixtures/demo-app/releases.js';
import { ConfigError } from '../errors.js';
import { loadConfig, parseConfigText } from './load.js';

const problemsOf = (text: string) => {
  try {
    parseConfigText(text, 'test.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  return [];
};

describe('config: shipped examples and defaults', () => {
  it('every shipped example validates', async () => {
    const files = [
      join(PROJECT_ROOT, 'config', 'release-guard.example.yaml'),
      ...(await readdir(join(PROJECT_ROOT, 'config', 'examples'))).map((f) => join(PROJECT_ROOT, 'config', 'examples', f)),
    ];
    for (const file of files) await expect(loadConfig(file), file).resolves.toBeTruthy();
  });

  it('the documented defaults are the runbook thresholds', async () => {
    const cfg = parseConfigText(`
service: web
probes: [{ name: h, type: http, url: "http://127.0.0.1:1/health", version_path: version }, { name: host, type: system }]
release: { version_probe: h }
rules: { health: { probe: h }, error_rate: { probe: h }, latency_ratio: { probe: h }, latency_max: { probe: h }, cpu: { probe: host }, memory: { probe: host } }
rollback: { steps: [{ type: pm2, pm2_app: web }] }
verification: { probe: h }
`);
    expect(cfg.rules).toMatchObject({
      health: { consecutive: 3 },
      error_rate: { threshold: 0.05 },
      latency_ratio: { ratio: 3 },
      latency_max: { threshold: 500 },
      cpu: { threshold: 0.7 },
      memory: { threshold: 0.8 },
    });
    expect(cfg.state_dir).toBe('/var/lib/release-guard');
    expect(cfg.server.host).toBe('127.0.0.1');
  });
});

describe('config: validation errors', () => {
  it('names every bad key at once, with what is allowed', () => {
    const problems = problemsOf(`
service: web
probes:
  - { name: h, type: htp, url: "http://x" }
  - { name: db, type: mysql, user: u, port: 99999 }
schedule: { interval: fast }
release: { version_probe: nope }
rules: { error_rate: { probe: db, threshold: 5 }, cpu: { probe: h, for: 1m, treshold: 0.5 } }
rollback: { steps: [{ type: releases, dir: /srv/web }] }
verification: { probe: h, passes: 0 }
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        'probes[0].type: "htp" is not a known type; allowed: http, system, process, prometheus, scrape, access_log, mysql, redis',
        expect.stringMatching(/^probes\[1\]\.port: 99999: must be at most 65535/),
        expect.stringMatching(/^schedule\.interval: "fast" is not a duration/),
        expect.stringMatching(/^rules\.error_rate\.threshold: 5: must be below 1/),
        expect.stringMatching(/^rules\.cpu\.treshold: unknown key/),
        expect.stringMatching(/^rollback\.steps\[0\]\.pm2_app: required/),
        expect.stringMatching(/^verification\.passes: 0: must be at least 1/),
        'release.version_probe: no probe named "nope"; defined probes: h, db',
        'rules.error_rate.probe: probe "db" is of type mysql; this needs a http or scrape or access_log or prometheus probe',
      ]),
    );
  });

  it('the sequential rules: defaults, and a tolerance that is not below the threshold is refused', () => {
    const base = `
service: web
probes: [{ name: h, type: http, url: "http://127.0.0.1:1/health", version_path: version }]
release: { version_probe: h }
rollback: { steps: [{ type: pm2, pm2_app: web }] }
verification: { probe: h }
`;
    const cfg = parseConfigText(`${base}rules: { health: { probe: h }, error_rate: { probe: h }, latency_ratio: { probe: h } }\n`);
    expect(cfg.rules).toMatchObject({
      health: { min_span: 1000 },
      error_rate: { budget: 0.001, min_span: 1000 },
      latency_ratio: { tolerance: 0.02, budget: 0.001, min_span: 1000 },
    });
    expect(cfg.rules.error_rate!.tolerance).toBeUndefined();
    expect(problemsOf(`${base}rules: { error_rate: { probe: h, threshold: 1, budget: 0 }, latency_ratio: { probe: h, tolerance: 0.05 } }\n`)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^rules\.error_rate\.threshold: 1: must be below 1/),
        expect.stringMatching(/^rules\.error_rate\.budget: 0: must be/),
        expect.stringMatching(/^rules\.latency_ratio\.tolerance: 0\.05: must be below 0\.05/),
      ]),
    );
    expect(problemsOf(`${base}rules: { error_rate: { probe: h, threshold: 0.05, tolerance: 0.06 } }\n`)).toEqual([
      'rules.error_rate.tolerance: must be below threshold: the tolerance is an error ratio never rolled back, the threshold one that is',
    ]);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(problemsOf('service: [web\nprobes: x')[0]).toMatch(/^line \d+, column \d+: YAML syntax/);
  });
});
