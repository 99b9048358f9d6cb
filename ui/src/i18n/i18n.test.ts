import { describe, expect, it } from 'vitest';
import { en } from './en';
import { format, LANGUAGES, pickLanguage, translate } from './index';

describe('translations', () => {
  it('cover every English string in every language, with the same placeholders', () => {
    const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const language of LANGUAGES) {
      expect(Object.keys(language.dictionary).sort(), language.code).toEqual(Object.keys(en).sort());
      for (const [key, text] of Object.entries(language.dictionary)) {
        expect(text.trim(), `${language.code} ${key}`).not.toBe('');
        expect(placeholders(text), `${language.code} ${key}`).toEqual(placeholders(en[key as keyof typeof en]));
      }
    }
  });

  it('are really translated (not English copied)', () => {
    for (const language of LANGUAGES.filter((l) => l.code !== 'en')) {
      const same = Object.entries(language.dictionary).filter(
        ([key, text]) => text === en[key as keyof typeof en] && key !== 'app.name',
      );
      expect(same, language.code).toEqual([]);
    }
  });

  it('pick the system language, Chinese by script and region', () => {
    expect(pickLanguage(['ja-JP', 'en-US'])).toBe('ja');
    expect(pickLanguage(['ko'])).toBe('ko');
    expect(pickLanguage(['zh-CN'])).toBe('zh-CN');
    expect(pickLanguage(['zh-Hans-SG'])).toBe('zh-CN');
    expect(pickLanguage(['zh-TW'])).toBe('zh-TW');
    expect(pickLanguage(['zh-Hant-HK'])).toBe('zh-TW');
    expect(pickLanguage(['fr-FR', 'de'])).toBe('en');
    expect(pickLanguage(['fr-FR', 'ko-KR'])).toBe('ko');
    expect(pickLanguage([])).toBe('en');
  });

  it('fill placeholders', () => {
    expect(format('{a} and {b}', { a: 1, b: 'x' })).toBe('1 and x');
    expect(format('{missing}')).toBe('{missing}');
    expect(translate('ja', 'typing.one', { name: 'ann' })).toBe('ann さんが入力中…');
  });
});
