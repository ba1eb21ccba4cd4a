fn main() -> std::process::ExitCode {
    let code = ecs_secrets::run(std::env::args_os().collect());
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
