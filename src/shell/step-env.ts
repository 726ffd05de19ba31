/**
 * The environment of every program a step runs. Not the guard's own: the guard's environment holds
 * its API token, database and Redis passwords and webhook URLs, and a step's program (an
 * `npm ci` with lifecycle scripts of any dependency, a build, a command hook) must not see them.
 * A program gets what a program needs to work at all (where programs are, the home directory,
 * the locale, the time zone, who it runs as, where temp files go, where its tools find their
 * own configuration), plus what its step gives it explicitly: a command step's `env`, a strategy's
 * own variables (e.g. MYSQL_PWD for the database step's mysql client only).
 */

/** Variables passed through from the guard's environment, by exact name. */
const PASSED = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  // Where tools the strategies run find their own configuration (paths, not credentials).
  'KUBECONFIG',
  'DOCKER_HOST',
  'DOCKER_CONFIG',
  'SSH_AUTH_SOCK',
  'GIT_SSH_COMMAND',
  'NPM_CONFIG_CACHE',
  'npm_config_cache',
  'XDG_CONFIG_HOME',
  'XDG_CACHE_HOME',
  'PM2_HOME',
] as const;

/** Variables passed through by prefix: the locale categories. */
const PASSED_PREFIX = ['LC_'];

/** The environment a step's program starts with: the minimal base, then `extra` on top. */
export function stepEnvironment(extra: Readonly<Record<string, string>> = {}, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined) continue;
    if ((PASSED as readonly string[]).includes(name) || PASSED_PREFIX.some((p) => name.startsWith(p))) env[name] = value;
  }
  return { ...env, ...extra };
}
