import { describe, expect, it } from 'vitest';
import { errorMessage } from './errors';

describe('error sentences', () => {
  it('are chosen by code, with conflict read by what was being done', () => {
    expect(errorMessage({ code: 'conflict', message: 'the username `ann` is taken' }).key).toBe('error.conflict');
    expect(errorMessage({ code: 'conflict', message: 'already in this call' }, 'call').key).toBe('error.conflict_call');
    expect(errorMessage({ code: 'conflict', message: 'the message was deleted' }, 'message').key).toBe(
      'error.conflict_message',
    );
    expect(errorMessage({ code: 'rate_limited', message: 'too many requests; slow down' })).toEqual({
      key: 'error.rate_limited',
    });
  });

  it("shows the server's words only where they say what was wrong", () => {
    expect(errorMessage({ code: 'invalid', message: 'a room name is 1 to 100 characters' })).toEqual({
      key: 'error.invalid',
      params: { message: 'a room name is 1 to 100 characters' },
    });
    expect(errorMessage({ code: 'brand_new', message: 'something' })).toEqual({
      key: 'error.generic',
      params: { message: 'something' },
    });
  });
});
