// The UI's languages and the one in use. The system language is the default; the user's
// choice (saved in settings) wins.
import { en, type Dictionary, type MessageKey } from './en';
import { ja } from './ja';
import { ko } from './ko';
import { zhCN } from './zh-CN';
import { zhTW } from './zh-TW';

export type { MessageKey } from './en';

export const LANGUAGES = [
  { code: 'en', name: 'English', dictionary: en as Dictionary },
  { code: 'zh-CN', name: '简体中文', dictionary: zhCN },
  { code: 'zh-TW', name: '繁體中文', dictionary: zhTW },
  { code: 'ja', name: '日本語', dictionary: ja },
  { code: 'ko', name: '한국어', dictionary: ko },
] as const;

export type LanguageCode = (typeof LANGUAGES)[number]['code'];

/** The best of our languages for the system's preferences (BCP 47 tags), English otherwise. */
export function pickLanguage(preferred: readonly string[]): LanguageCode {
  for (const tag of preferred) {
    const lower = tag.toLowerCase();
    if (lower.startsWith('zh')) {
      // Traditional for Taiwan, Hong Kong, Macau and explicit Hant; Simplified otherwise.
      if (/hant|-tw|-hk|-mo/.test(lower)) return 'zh-TW';
      return 'zh-CN';
    }
    const base = lower.split('-')[0];
    const match = LANGUAGES.find((l) => l.code === base);
    if (match) return match.code;
  }
  return 'en';
}

export function isLanguage(code: string | null | undefined): code is LanguageCode {
  return LANGUAGES.some((l) => l.code === code);
}

/** Fills `{name}` placeholders; unknown ones stay as they are. */
export function format(template: string, params: Record<string, string | number> = {}): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

export function translate(
  code: LanguageCode,
  key: MessageKey,
  params?: Record<string, string | number>,
): string {
  const dictionary = LANGUAGES.find((l) => l.code === code)?.dictionary ?? en;
  return format(dictionary[key] ?? en[key], params);
}
