// Which translated sentence a failed command shows: chosen by the error's stable code (and,
// where one code means different things, by what was being done), never the server's English.
import type { MessageKey } from '../i18n';
import type { CommandError } from './types';

/** What the user was doing when the error came: `conflict` means different things. */
export type ErrorContext = 'name' | 'call' | 'message';

const BY_CODE: Record<string, MessageKey> = {
  unauthorized: 'error.unauthorized',
  not_member: 'error.not_member',
  forbidden: 'error.forbidden',
  not_found: 'error.not_found',
  disconnected: 'error.disconnected',
  certificate_not_trusted: 'error.certificate_not_trusted',
  rate_limited: 'error.rate_limited',
  too_large: 'error.too_large',
  media: 'error.media',
  call_ended: 'error.call_ended',
};

const CONFLICT: Record<ErrorContext, MessageKey> = {
  name: 'error.conflict',
  call: 'error.conflict_call',
  message: 'error.conflict_message',
};

/** The sentence for `error` and its parameters (only `invalid` and unknown codes show the
 * server's own words, which say what exactly was wrong). */
export function errorMessage(
  error: CommandError,
  context: ErrorContext = 'name',
): { key: MessageKey; params?: Record<string, string> } {
  if (error.code === 'conflict') return { key: CONFLICT[context] };
  if (error.code === 'invalid') return { key: 'error.invalid', params: { message: error.message } };
  const key = BY_CODE[error.code];
  return key ? { key } : { key: 'error.generic', params: { message: error.message } };
}
