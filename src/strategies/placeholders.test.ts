import { describe, expect, it } from 'vitest';
import { RollbackError } from '../errors.js';
import { expandArg, expandArgs } from './placeholders.js';

const versions = { from: 'v2.0.0', to: 'v1.9.3' };

describe('expandArgs', () => {
  it.each([
    [['notify', '{to}'], ['notify', 'v1.9.3']],
    [['--from={from}', '--to={to}'], ['--from=v2.0.0', '--to=v1.9.3']],
    [['docker-compose.{to}.yml'], ['docker-compose.v1.9.3.yml']],
    [['{to}{to}-{from}'], ['v1.9.3v1.9.3-v2.0.0']],
    [['no placeholders', '{other}', '{ to }', '{TO}'], ['no placeholders', '{other}', '{ to }', '{TO}']],
    [[], []],
  ])('%j -> %j', (args, expected) => {
    expect(expandArgs(args, versions)).toEqual(expected);
  });

  it('does not change the array it was given', () => {
    const args = ['run', '{to}'] as const;
    expandArgs(args, versions);
    expect(args).toEqual(['run', '{to}']);
  });

  it('expands in one pass: a substituted value is never expanded again', () => {
    // Such a version is refused anyway; this pins that expansion alone could not recurse.
    expect(expandArg('{from}', { from: 'a', to: 'b' })).toBe('a');
  });

  it.each(['v1;rm -rf /', '../../etc', '..', '.', '', 'v1 --force', '$(reboot)', 'v1\nv2', '{to}', '--help', '-rf', '.hidden', 'v1..2', 'v'.repeat(129)])(
    'refuses to substitute version %j',
    (bad) => {
      expect(() => expandArgs(['deploy', '{to}'], { from: 'v2', to: bad })).toThrow(RollbackError);
      expect(() => expandArgs(['deploy', '{from}'], { from: bad, to: 'v1' })).toThrow(/not allowed/);
    },
  );

  it('only judges the versions it substitutes', () => {
    expect(expandArgs(['deploy', '{to}'], { from: 'not a version!', to: 'v1' })).toEqual(['deploy', 'v1']);
    expect(expandArgs(['status'], { from: 'x;y', to: 'x;y' })).toEqual(['status']);
  });

  it('names the placeholder and the validate step in its error', () => {
    try {
      expandArgs(['{to}'], { from: 'v2', to: 'v1;rm -rf /' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(RollbackError);
      expect((error as RollbackError).step).toBe('validate');
      expect((error as RollbackError).message).toContain('{to}');
    }
  });
});
