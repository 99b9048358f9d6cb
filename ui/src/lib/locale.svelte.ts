// The language in use, as reactive state: components that call `t` re-render on a switch.
import { isLanguage, pickLanguage, translate, type LanguageCode, type MessageKey } from '../i18n';

function systemLanguages(): readonly string[] {
  if (typeof navigator === 'undefined') return [];
  return navigator.languages?.length ? navigator.languages : [navigator.language];
}

export const locale = $state<{ code: LanguageCode }>({ code: pickLanguage(systemLanguages()) });

export function t(key: MessageKey, params?: Record<string, string | number>): string {
  return translate(locale.code, key, params);
}

/** Uses the saved choice, or the system language when there is none. */
export function useLanguage(saved: string | null): void {
  locale.code = isLanguage(saved) ? saved : pickLanguage(systemLanguages());
  if (typeof document !== 'undefined') document.documentElement.lang = locale.code;
}
