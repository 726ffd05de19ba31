/**
 * `release-guard completion bash|zsh`. The bash script is sourced in a real bash and its
 * completion function called as bash would (COMP_WORDS/COMP_CWORD set, COMPREPLY read back);
 * the zsh script is installed in a real interactive zsh (on a pseudo-terminal through zsh/zpty,
 * compinit loading it from fpath as a user's would) and TAB pressed, the offered matches captured
 * by wrapping compadd; it is also checked by `zsh -n` and for a function per command. zsh is
 * installed from Debian when missing. The scripts are generated from the program, so a command
 * added later shows up without touching the generator.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { ensureDebianPackage } from '../helpers/apt.js';

async function cli(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { env: {}, out: (t) => void (stdout += t), err: (t) => void (stderr += t), color: false });
  return { code, stdout, stderr };
}

function run(program: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(program, args, { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

/** What bash's completion offers for the command line `words` (the last one is being completed). */
async function bashComplete(script: string, words: string[]): Promise<string[]> {
  const driver = [
    'source /dev/stdin <<<"$SCRIPT"',
    // The function bash registered for the program, called the way bash calls it.
    'fn=$(complete -p release-guard | sed -E "s/.* -F ([^ ]+) .*/\\1/")',
    'read -r -a COMP_WORDS <<<"$LINE"',
    '[[ "$LINE" == *" " ]] && COMP_WORDS+=("")',
    'COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))',
    '"$fn" release-guard "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const { code, stdout, stderr } = await run('bash', ['--norc', '--noprofile', '-c', driver], { SCRIPT: script, LINE: words.join(' ') });
  expect(code, stderr).toBe(0);
  expect(stderr).toBe('');
  return stdout.split('\n').filter(Boolean).sort();
}

/**
 * Presses TAB after `line` in an interactive zsh with the completion file in its fpath, and returns
 * the matches zsh offered: compadd is wrapped to also write what it adds to a file.
 */
const ZSH_DRIVER = String.raw`
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='' ; RPROMPT=''"
zpty -w z "fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd \"\$@\"; return \$?; fi; typeset -a __hits; builtin compadd -A __hits \"\$@\"; (( \$#__hits == 0 )) && return 1; print -rl -- \"\${(@)__hits}\" >> $3; builtin compadd \"\$@\" }"
zpty -w -n z "$2"$'	'
for i in {1..100}; do [[ -s $3 ]] && break; sleep 0.1; done
sleep 0.3
zpty -d z
`;

async function zshComplete(zsh: string, dir: string, line: string): Promise<string[]> {
  const matches = join(dir, `matches-${Math.random().toString(36).slice(2)}`);
  const { code, stderr } = await run(zsh, ['-f', '-c', ZSH_DRIVER, 'driver', join(dir, 'fpath'), line, matches]);
  expect(code, stderr).toBe(0);
  const text = await readFile(matches, 'utf8').catch(() => '');
  return [...new Set(text.split('\n').filter(Boolean))].sort();
}

describe('release-guard completion', () => {
  it('bash: commands, subcommands, options and option values complete from the program', async () => {
    const { code, stdout: script, stderr } = await cli(['completion', 'bash']);
    expect(code, stderr).toBe(0);

    expect(await bashComplete(script, ['release-guard', 'st'])).toEqual(['start', 'status']);
    const releaseOptions = await bashComplete(script, ['release-guard', 'release', '--']);
    expect(releaseOptions).toEqual(['--by', '--config', '--help', '--json', '--timeout', '--url', '--wait']);
    // A nested command, and an option's value not taken for a command.
    expect(await bashComplete(script, ['release-guard', 'config', ''])).toEqual(['validate']);
    expect(await bashComplete(script, ['release-guard', 'rollback', '--reason', 'status', '--t'])).toEqual(['--to']);
    expect(await bashComplete(script, ['release-guard', 'completion', ''])).toEqual(['bash', 'zsh']);
    // Every top-level command is offered on an empty word.
    const top = await bashComplete(script, ['release-guard', '']);
    expect(top).toEqual(['check', 'completion', 'config', 'drill', 'history', 'init', 'ops', 'pause', 'preflight', 'promote', 'release', 'resume', 'rollback', 'start', 'status', 'veto']);
    expect(await bashComplete(script, ['release-guard', 'ops', 'rules', '--r'])).toEqual(['--runbook-base']);
  });

  it('zsh: the script passes zsh -n and has a function and a dispatch line for every command', async () => {
    const { code, stdout: script, stderr } = await cli(['completion', 'zsh']);
    expect(code, stderr).toBe(0);
    expect(script.startsWith('#compdef release-guard\n')).toBe(true);
    const zsh = (await ensureDebianPackage('zsh', 'zsh')).path;
    const syntax = await run(zsh, ['-n', '-c', script]);
    expect(syntax.code, syntax.stderr).toBe(0);

    for (const command of ['start', 'status', 'history', 'preflight', 'release', 'rollback', 'drill', 'veto', 'promote', 'pause', 'resume', 'init', 'config', 'check', 'ops', 'completion']) {
      expect(script).toContain(`\n_release_guard__${command}() {`);
      expect(script).toMatch(new RegExp(`\\n {8}${command}\\) _release_guard__${command} ;;`));
    }
    expect(script).toContain('\n_release_guard__config__validate() {');
    const release = script.slice(script.indexOf('_release_guard__release() {'), script.indexOf('\n}\n', script.indexOf('_release_guard__release() {')));
    for (const flag of ['--wait', '--timeout', '--by', '--json', '--url']) expect(release).toContain(`'${flag}[`);
    expect(release).toContain("'1:version: '");
    expect(script).toContain("'1:shell:(bash zsh)'");
    expect(script.trimEnd().endsWith('_release_guard "$@"')).toBe(true);
  });

  it('zsh: TAB in a real interactive zsh offers the commands, options and choices', async () => {
    const zsh = (await ensureDebianPackage('zsh', 'zsh')).path;
    const { stdout: script } = await cli(['completion', 'zsh']);
    const dir = await mkdtemp(join(tmpdir(), 'rg-zsh-'));
    try {
      // Installed as the script's own comment says: a file named _release-guard in fpath.
      await mkdir(join(dir, 'fpath'));
      await writeFile(join(dir, 'fpath', '_release-guard'), script);
      expect(await zshComplete(zsh, dir, 'release-guard st')).toEqual(['start', 'status']);
      expect(await zshComplete(zsh, dir, 'release-guard release --')).toEqual(['--by', '--config', '--help', '--json', '--timeout', '--url', '--wait']);
      expect(await zshComplete(zsh, dir, 'release-guard config ')).toEqual(['validate']);
      expect(await zshComplete(zsh, dir, 'release-guard completion ')).toEqual(['bash', 'zsh']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('an unknown shell is a usage error (exit 2) saying which shells there are', async () => {
    const { code, stdout, stderr } = await cli(['completion', 'fish']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n')[0]).toBe("error: command-argument value 'fish' is invalid for argument 'shell'. Allowed choices are bash, zsh.");
  });
});
