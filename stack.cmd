@echo off
rem Windows twin of ./stack: makes (or refreshes) the project's virtualenv in .venv,
rem keyed by the content of the files that define it, then runs `invoke ARGS` in it.
rem   .\stack up        deploy (cmd.exe and PowerShell alike)
rem Once .venv exists you can also run .venv\Scripts\activate and call `invoke` directly.
rem STACK_VENV=C:\some\dir keeps the venv outside the checkout.
setlocal EnableExtensions DisableDelayedExpansion
set "STACK_CWD=%CD%"
set "here=%~dp0"
set "here=%here:~0,-1%"
cd /d "%here%"
if defined STACK_VENV (set "venv=%STACK_VENV%") else (set "venv=%here%\.venv")
if defined PYTHON goto :have_py
set "PYTHON=python"
where py >nul 2>nul && set "PYTHON=py -3"
:have_py
%PYTHON% -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)" >nul 2>nul
if errorlevel 1 (
  echo error: Python 3.11+ not found - install it from https://www.python.org/downloads/ and tick "Add python.exe to PATH", or set PYTHON=C:\path\to\python.exe, then retry 1>&2
  exit /b 2
)

rem Which extras: users get the runtime (+ the embedded Foundry server); test tools get dev.
set "extras=foundry,bench"
for %%A in (test lint bench smoke) do if /i "%~1"=="%%A" set "extras=dev"
if defined STACK_EXTRAS set "extras=%STACK_EXTRAS%"
set "key="
for /f "usebackq delims=" %%K in (`%PYTHON% -c "import hashlib, pathlib, sys; h = hashlib.sha256(); [h.update(pathlib.Path(p).read_bytes()) for p in ('pyproject.toml', 'exporter/pyproject.toml', 'gateway/pyproject.toml') if pathlib.Path(p).exists()]; h.update(sys.version.encode()); print(h.hexdigest()[:16])"`) do set "key=%%K"
set "have="
set "stamp="
set "src="
if exist "%venv%\.stack-extras" set /p have=<"%venv%\.stack-extras"
if exist "%venv%\.stack-key" set /p stamp=<"%venv%\.stack-key"
if exist "%venv%\.stack-src" set /p src=<"%venv%\.stack-src"
if "%have%"=="dev" set "extras=dev"
if not exist "%venv%\Scripts\invoke.exe" goto :install
if not "%stamp%"=="%key%" goto :install
if not "%have%"=="%extras%" goto :install
if not "%src%"=="%here%" goto :repoint
goto :ready

:install
echo ^>^> preparing %venv% (extras: %extras%) - the first run takes a minute 1>&2
if not exist "%venv%\Scripts\python.exe" %PYTHON% -m venv "%venv%"
if errorlevel 1 goto :install_failed
"%venv%\Scripts\python.exe" -m pip install -q --upgrade pip >"%venv%\install.log" 2>&1
if errorlevel 1 goto :install_failed
"%venv%\Scripts\python.exe" -m pip install -q -e ".[%extras%]" -e ./exporter -e ./gateway >>"%venv%\install.log" 2>&1
if errorlevel 1 goto :install_failed
>"%venv%\.stack-key" echo %key%
>"%venv%\.stack-extras" echo %extras%
>"%venv%\.stack-src" echo %here%
goto :ready

:repoint
rem A venv kept outside the checkout made for another clone: point the editable installs here.
"%venv%\Scripts\python.exe" -m pip install -q --no-deps -e . -e ./exporter -e ./gateway 1>&2
>"%venv%\.stack-src" echo %here%
goto :ready

:install_failed
if exist "%venv%\install.log" type "%venv%\install.log" 1>&2
echo error: installing the Python packages failed (full log: %venv%\install.log) - check the network or PyPI access and retry 1>&2
exit /b 2

:ready
set "PATH=%venv%\Scripts;%PATH%"
rem `.\stack logs SERVICE`: invoke's positional arguments are mandatory, so the optional
rem service name becomes `--service SERVICE` here (./stack does the same).
if /i not "%~1"=="logs" goto :run
if "%~2"=="" goto :run
set "arg2=%~2"
if "%arg2:~0,1%"=="-" goto :run
set "rest="
shift
shift
:collect
if "%~1"=="" goto :logs
set rest=%rest% %1
shift
goto :collect
:logs
"%venv%\Scripts\invoke.exe" logs --service "%arg2%"%rest%
exit /b %errorlevel%

:run
"%venv%\Scripts\invoke.exe" %*
exit /b %errorlevel%
