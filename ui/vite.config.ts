import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The desktop shell loads `dist/` (see tauri.conf.json); `assets/` at the repository root holds
// files served as they are (the ring sound).
export default defineConfig({
  plugins: [svelte()],
  publicDir: '../assets',
  clearScreen: false,
  server: { port: 5173, strictPort: true, host: '127.0.0.1' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  test: { environment: 'node', include: ['src/**/*.test.ts'] },
});
