import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The desktop shell loads `dist/` (see tauri.conf.json); `vite build --mode web` builds the same
// UI for the browser into `dist-web/`, which parlor-server serves with `--web-dir`. `assets/` at
// the repository root holds files served as they are (the ring sound).
export default defineConfig(({ mode }) => ({
  plugins: [svelte()],
  publicDir: '../assets',
  clearScreen: false,
  server: { port: 5173, strictPort: true, host: '127.0.0.1' },
  build: { outDir: mode === 'web' ? 'dist-web' : 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  test: { environment: 'node', include: ['src/**/*.test.ts'] },
}));
